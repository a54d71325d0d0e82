/**
 * ONNX Runtime's offline graph optimisation: a session built with optimizedModelFilePath writes
 * the graph after ORT's fusions (attention, LayerNorm, GELU, quantised MatMul), so the serving
 * runtime starts from the optimised graph instead of redoing the work at every start. The saved
 * graph is specific to the execution provider it was optimised for.
 */
export type OrtLevel = 'basic' | 'extended';

export async function ortOptimizeFile(input: string, output: string, level: OrtLevel, provider: string): Promise<{ ortVersion: string }> {
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(input, {
    graphOptimizationLevel: level,
    optimizedModelFilePath: output,
    executionProviders: [provider],
  });
  await session.release();
  return { ortVersion: ort.env.versions?.node ?? 'unknown' };
}
