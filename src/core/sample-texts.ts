/**
 * Parsing of the text files the quality gates read (.jsonl or .txt), and of BEIR-style corpus
 * and query files. Pure: callers read the file and turn thrown Errors into UsageErrors naming
 * the flag.
 */

export interface TextItem {
  id: string;
  text: string;
}

function fromJsonLine(line: string, lineNo: number, source: string, fields: string[]): TextItem {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (err) {
    throw new Error(`${source}:${lineNo}: not valid JSON (${(err as Error).message})`);
  }
  if (typeof v === 'string') return { id: `line-${lineNo}`, text: v };
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const text = fields.map((f) => o[f]).find((x) => typeof x === 'string') as string | undefined;
    if (text === undefined) throw new Error(`${source}:${lineNo}: no text field (expected one of ${fields.join(', ')})`);
    const rawId = o.id ?? o._id;
    const title = typeof o.title === 'string' && o.title.trim() ? o.title.trim() : undefined;
    return { id: rawId === undefined ? `line-${lineNo}` : String(rawId), text: title ? `${title}\n${text}` : text };
  }
  throw new Error(`${source}:${lineNo}: expected a JSON string or an object with a "text" field`);
}

/** .jsonl: one string or {"id", "text"} per line; anything else: one text per non-empty line. */
export function parseTexts(content: string, source: string, fields = ['text', 'input', 'query']): TextItem[] {
  const jsonl = /\.jsonl?$/i.test(source) || content.trimStart().startsWith('{') || content.trimStart().startsWith('"');
  const out: TextItem[] = [];
  const seen = new Set<string>();
  content.split(/\r?\n/).forEach((line, i) => {
    if (!line.trim()) return;
    const item = jsonl ? fromJsonLine(line, i + 1, source, fields) : { id: `line-${i + 1}`, text: line };
    if (!item.text.trim()) throw new Error(`${source}:${i + 1}: empty text (an endpoint cannot embed it)`);
    if (seen.has(item.id)) throw new Error(`${source}:${i + 1}: duplicate id ${JSON.stringify(item.id)}`);
    seen.add(item.id);
    out.push(item);
  });
  if (out.length === 0) throw new Error(`${source}: no texts in it`);
  return out;
}

/** One line, at most `max` characters, for tables and "worst texts" lists. */
export function preview(text: string, max = 60): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}
