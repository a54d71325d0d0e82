/**
 * A tiny logic-less template renderer (a strict subset of mustache):
 *   {{name}}          a scalar, escaped for the target (nginx, yaml, shell)
 *   {{{name}}}        a scalar inserted verbatim: only for fragments our own code built
 *   {{#name}}..{{/name}}  repeated per array item (item keys shadow outer ones), once for true,
 *                     skipped for false or []
 *   {{^name}}..{{/name}}  rendered only when name is false or []
 *   {{! comment }}    dropped
 * A section tag alone on its line takes the whole line with it, so templates stay readable.
 * Every name must be defined: a missing one is an error naming it and the template, never "".
 */

export type Scalar = string | number | boolean;
export type TemplateValue = Scalar | TemplateVars[] | TemplateVars;
export interface TemplateVars {
  [name: string]: TemplateValue | undefined;
}

export type EscapeTarget = 'nginx' | 'yaml' | 'shell' | 'none';

export class TemplateError extends Error {
  constructor(
    message: string,
    readonly template: string,
    readonly variable?: string,
  ) {
    super(`${template}: ${message}`);
    this.name = 'TemplateError';
  }
}

type Node =
  | { kind: 'text'; text: string }
  | { kind: 'var'; name: string; raw: boolean; line: number }
  | { kind: 'section'; name: string; inverted: boolean; children: Node[]; line: number };

// {{{raw}}} or {{sigil name}}; a "}" right after a tag is text (JSON in an nginx string).
const TAG = /\{\{\{\s*([^}]*?)\s*\}\}\}|\{\{\s*([#^/!]?)\s*([^}]*?)\s*\}\}/g;

function parse(text: string, templateName: string): Node[] {
  // Standalone section/comment lines ("   {{#x}}\n") lose their indentation and newline.
  const standalone = /^[ \t]*\{\{[#^/!][^}]*\}\}[ \t]*(?:\r?\n|$)/gm;
  const cleaned = text.replace(standalone, (m) => m.trim());
  const root: Node[] = [];
  const stack: Array<{ name: string; children: Node[]; line: number }> = [];
  let current = root;
  let last = 0;
  const lineAt = (idx: number) => cleaned.slice(0, idx).split('\n').length;
  for (const m of cleaned.matchAll(TAG)) {
    const idx = m.index ?? 0;
    if (idx > last) current.push({ kind: 'text', text: cleaned.slice(last, idx) });
    last = idx + m[0].length;
    const triple = m[1] !== undefined;
    const sigil = triple ? '' : m[2];
    const name = (triple ? m[1] : m[3]) ?? '';
    const line = lineAt(idx);
    if (sigil === '!') continue;
    if (!/^[A-Za-z_][A-Za-z0-9_.]*$/.test(name)) {
      throw new TemplateError(`line ${line}: bad tag name ${JSON.stringify(name)}`, templateName);
    }
    if (sigil === '#' || sigil === '^') {
      const node: Node = { kind: 'section', name, inverted: sigil === '^', children: [], line };
      current.push(node);
      stack.push({ name, children: current, line });
      current = node.children;
    } else if (sigil === '/') {
      const open = stack.pop();
      if (!open || open.name !== name) {
        throw new TemplateError(`line ${line}: {{/${name}}} closes ${open ? `{{#${open.name}}} from line ${open.line}` : 'nothing'}`, templateName);
      }
      current = open.children;
    } else {
      current.push({ kind: 'var', name, raw: triple, line });
    }
  }
  if (last < cleaned.length) current.push({ kind: 'text', text: cleaned.slice(last) });
  const open = stack.pop();
  if (open) throw new TemplateError(`line ${open.line}: {{#${open.name}}} is never closed`, templateName);
  return root;
}

function lookup(scopes: TemplateVars[], name: string): { found: boolean; value: TemplateValue | undefined } {
  const [head, ...rest] = name.split('.');
  for (let i = scopes.length - 1; i >= 0; i--) {
    const scope = scopes[i]!;
    if (Object.prototype.hasOwnProperty.call(scope, head!) && scope[head!] !== undefined) {
      let v: TemplateValue | undefined = scope[head!];
      for (const k of rest) {
        if (v === null || typeof v !== 'object' || Array.isArray(v) || !(k in v)) return { found: false, value: undefined };
        v = (v as TemplateVars)[k];
      }
      return { found: v !== undefined, value: v };
    }
  }
  return { found: false, value: undefined };
}

/**
 * Escapers refuse what cannot be represented safely instead of quoting it into something the
 * target would misread: a value that breaks out of an nginx directive is a bug or an attack.
 */
export const escapers: Record<EscapeTarget, (value: Scalar, name: string) => string> = {
  none: (v) => String(v),
  nginx: (v, name) => {
    const s = String(v);
    // No whitespace, quotes, braces, ';', '$' (variables), '#' (comments) or backslashes.
    if (s === '' || /[\s"'{};$#\\]/.test(s) || /[\x00-\x1f\x7f]/.test(s)) {
      throw new Error(`value of ${name} cannot go into an nginx config as is: ${JSON.stringify(s)}`);
    }
    return s;
  },
  yaml: (v) => {
    if (typeof v !== 'string') return String(v);
    // Plain when it reads back as the same string; otherwise a JSON string, which YAML accepts.
    const plain = /^[A-Za-z0-9_./@-][A-Za-z0-9_./:@+-]*$/.test(v) && !/^(?:true|false|yes|no|on|off|null|~|[-+]?[0-9._]+(?:e[-+]?[0-9]+)?|0x[0-9a-f]+|0o[0-7]+)$/i.test(v);
    return plain ? v : JSON.stringify(v);
  },
  shell: (v) => {
    const s = String(v);
    if (s === '') return "''";
    if (/^[A-Za-z0-9_./:@%+=,-]+$/.test(s)) return s;
    return `'${s.replace(/'/g, `'\\''`)}'`;
  },
};

export interface RenderOptions {
  /** Name used in error messages, e.g. "templates/nginx/nginx.conf". */
  name?: string;
  escape?: EscapeTarget;
}

export function renderTemplate(text: string, vars: TemplateVars, options: RenderOptions = {}): string {
  const templateName = options.name ?? 'template';
  const escape = escapers[options.escape ?? 'none'];
  const nodes = parse(text, templateName);
  const out: string[] = [];
  const walk = (list: Node[], scopes: TemplateVars[]) => {
    for (const node of list) {
      if (node.kind === 'text') {
        out.push(node.text);
        continue;
      }
      const { found, value } = lookup(scopes, node.name);
      if (!found) {
        throw new TemplateError(`line ${node.line}: variable "${node.name}" is not defined`, templateName, node.name);
      }
      if (node.kind === 'var') {
        if (typeof value === 'object') {
          throw new TemplateError(`line ${node.line}: "${node.name}" is a list or object; use {{#${node.name}}}`, templateName, node.name);
        }
        try {
          out.push(node.raw ? String(value) : escape(value as Scalar, node.name));
        } catch (err) {
          throw new TemplateError(`line ${node.line}: ${(err as Error).message}`, templateName, node.name);
        }
        continue;
      }
      const items: TemplateVars[] = Array.isArray(value)
        ? value
        : value === false || value === '' || value === 0
          ? []
          : typeof value === 'object'
            ? [value as TemplateVars]
            : [{}];
      if (node.inverted) {
        if (items.length === 0) walk(node.children, scopes);
      } else {
        for (const item of items) walk(node.children, [...scopes, item]);
      }
    }
  };
  walk(nodes, [vars]);
  return out.join('');
}
