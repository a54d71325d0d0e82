import { gunzipSync } from 'node:zlib';

/** A file user data carries packed (`base64 -d <<'MARKER' | gunzip > ...`), as the instance gets it. */
export function packedFile(script: string, marker: string): string {
  const m = new RegExp(`<<'${marker}'[^\\n]*\\n([\\s\\S]*?)\\n${marker}\\n`).exec(script);
  if (!m) throw new Error(`user data has no ${marker} heredoc`);
  return gunzipSync(Buffer.from(m[1]!, 'base64')).toString('utf8');
}
