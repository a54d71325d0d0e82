/**
 * Pooling in the graph: masked mean (or the [CLS] row) and L2 normalisation appended after the
 * encoder, so a run returns [batch, dim] instead of [batch, seq, dim] and only the pooled vectors
 * leave the device. Same arithmetic as runtime/model.ts's pool(): the mean over the tokens the
 * mask keeps (an all-padding row pools to zeros), then division by the L2 norm.
 */
import { DT, floatTensor, GraphEditor, int64Tensor, opsetVersion, type NodeProto } from './graph.js';

export interface PoolOptions {
  /** The encoder output to pool (the manifest's "output"). */
  hidden: string;
  pooling: 'mean' | 'cls';
  normalize: boolean;
  dimensions: number;
  outputName?: string;
}

export function appendPooling(ed: GraphEditor, o: PoolOptions): string {
  const g = ed.model.graph!;
  const out = g.output?.find((v) => v.name === o.hidden);
  if (!out) throw new Error(`the graph has no output "${o.hidden}" to pool (it has ${(g.output ?? []).map((v) => v.name).join(', ')})`);
  if (out.type?.tensorType?.elemType !== DT.FLOAT) throw new Error(`output "${o.hidden}" is not float32; pool before converting the output type`);
  const opset = opsetVersion(ed.model);
  if (opset < 13) throw new Error(`opset ${opset} is older than 13; pooling in the graph needs opset 13 or later`);
  const nodes: NodeProto[] = [];
  const add = (op: string, inputs: string[], attrs: Parameters<GraphEditor['make']>[2] = {}) => {
    const n = ed.make(op, inputs, attrs);
    nodes.push(n);
    return n.output![0]!;
  };
  const axis1 = ed.addInit(int64Tensor('pool_axis1', [1], [1]));
  const tiny = (v: number) => ed.addInit(floatTensor('pool_eps', [], [v]));

  let pooled: string;
  if (o.pooling === 'cls') {
    pooled = add('Gather', [o.hidden, ed.addInit(int64Tensor('pool_cls_index', [], [0]))], { axis: 1 });
  } else {
    if (!ed.isGraphInput('attention_mask')) throw new Error('mean pooling in the graph needs an attention_mask input, and this graph has none');
    const maskF = add('Cast', ['attention_mask'], { to: DT.FLOAT });
    const mask3 = add('Unsqueeze', [maskF, ed.addInit(int64Tensor('pool_axis2', [1], [2]))]);
    const summed = add('ReduceSum', [add('Mul', [o.hidden, mask3]), axis1], { keepdims: 0 });
    const count = add('ReduceSum', [maskF, axis1], { keepdims: 1 });
    pooled = add('Div', [summed, add('Max', [count, tiny(1e-9)])]);
  }
  if (o.normalize) {
    const ss = add('ReduceSum', [add('Mul', [pooled, pooled]), axis1], { keepdims: 1 });
    pooled = add('Div', [pooled, add('Max', [add('Sqrt', [ss]), tiny(1e-12)])]);
  }
  const name = ed.fresh(o.outputName ?? 'sentence_embedding');
  nodes.push(ed.make('Identity', [pooled], {}, [name]));
  ed.place(nodes);
  // The hidden states stay inside the graph: no other output is copied back.
  g.output = [{ name, type: { tensorType: { elemType: DT.FLOAT, shape: { dim: [{ dimParam: 'batch' }, { dimValue: o.dimensions }] } } } }];
  return name;
}
