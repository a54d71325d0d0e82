import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { renderTemplate, TemplateError } from '../src/core/template.js';
import { parseHostedUrl, renderHostedAuthSnippet, renderNginxConf } from '../src/core/render.js';

describe('renderTemplate', () => {
  it('substitutes names, repeats sections per item, and renders inverted sections for empty lists', () => {
    const t = 'servers:\n{{#servers}}\n  - {{host}}:{{port}} ({{env}})\n{{/servers}}\n{{^servers}}\n  none\n{{/servers}}\n';
    expect(renderTemplate(t, { env: 'prod', servers: [{ host: 'a', port: 1 }, { host: 'b', port: 2 }] })).toBe(
      'servers:\n  - a:1 (prod)\n  - b:2 (prod)\n',
    );
    expect(renderTemplate(t, { env: 'prod', servers: [] })).toBe('servers:\n  none\n');
  });

  it('treats true/false/objects as sections and keeps a "}" that follows a tag', () => {
    expect(renderTemplate('{{#on}}yes{{/on}}{{#off}}no{{/off}}{{#obj}}[{{k}}]{{/obj}}', { on: true, off: false, obj: { k: 'v' } })).toBe('yes[v]');
    expect(renderTemplate("return 200 '{\"p\":{{p}}}';", { p: 25 })).toBe("return 200 '{\"p\":25}';");
  });

  it('names a missing variable, its line and the template instead of rendering ""', () => {
    const err = (() => {
      try {
        renderTemplate('a\nb {{present}} {{absent}}\n', { present: 1 }, { name: 'templates/x.conf' });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(TemplateError);
    expect((err as TemplateError).variable).toBe('absent');
    expect((err as Error).message).toBe('templates/x.conf: line 2: variable "absent" is not defined');
  });

  it('rejects unbalanced sections', () => {
    expect(() => renderTemplate('{{#a}}x', { a: true })).toThrow(/never closed/);
    expect(() => renderTemplate('{{#a}}x{{/b}}', { a: true })).toThrow(/closes \{\{#a\}\}/);
  });

  it('nginx escaping refuses values that would break out of a directive', () => {
    for (const bad of ['a;b', 'a b', 'x}', '$host', "it's", 'a#b', '']) {
      expect(() => renderTemplate('server {{v}};', { v: bad }, { escape: 'nginx' }), bad).toThrow(/cannot go into an nginx config/);
    }
    expect(renderTemplate('server {{v}};', { v: '127.0.0.1:8081' }, { escape: 'nginx' })).toBe('server 127.0.0.1:8081;');
    // Triple braces are for fragments our own code built, never user input.
    expect(renderTemplate('map {{{v}}} x;', { v: '$http_x_tenant_id' }, { escape: 'nginx' })).toBe('map $http_x_tenant_id x;');
  });

  it('yaml escaping quotes exactly what would not read back as the same string', () => {
    const y = (v: string | number) => renderTemplate('{{v}}', { v }, { escape: 'yaml' });
    expect(y('nginx:1.27')).toBe('nginx:1.27');
    expect(y('BAAI/bge-small-en-v1.5')).toBe('BAAI/bge-small-en-v1.5');
    expect(y('25')).toBe('"25"');
    expect(y('yes')).toBe('"yes"');
    expect(y('a: b')).toBe('"a: b"');
    expect(y(8080)).toBe('8080');
  });

  it('shell escaping survives a round trip through bash', () => {
    for (const v of ["it's", 'a b', '$(rm -rf /)', 'plain', '`x`', 'a"b\\c']) {
      const script = renderTemplate('printf %s {{v}}', { v }, { escape: 'shell' });
      expect(execFileSync('bash', ['-c', script], { encoding: 'utf8' })).toBe(v);
    }
  });
});

describe('renderNginxConf inputs', () => {
  const base = { listen: { port: 8000 }, selfHosted: ['127.0.0.1:8081'], hostedUrl: 'https://api.jina.ai/v1/embeddings', selfHostedPercent: 25 };

  it('the split: 100 fixed buckets, the rendered share as the lowest buckets, the split directory read per request', () => {
    const conf = renderNginxConf({ ...base, selfHostedPercent: 3, splitDir: '/srv/split' });
    expect(conf).toMatch(/split_clients "\$embedctl_split_key" \$embedctl_bucket \{\n(\s+1% \d+;\n){99}\s+\* 99;\n\s+\}/);
    expect(conf).toMatch(/map \$embedctl_bucket \$embedctl_rendered_split \{\n\s+default hosted;\n\s+0 selfhosted;\n\s+1 selfhosted;\n\s+2 selfhosted;\n\s+\}/);
    expect(conf).toContain('if (-f /srv/split/current/$embedctl_bucket) {');
    expect(conf).toMatch(/^# embedctl-split-dir: \/srv\/split$/m);
    expect(renderNginxConf({ ...base, selfHostedPercent: 0 })).toMatch(/\$embedctl_rendered_split \{\n\s+default hosted;\n\s+\}/);
    expect(renderNginxConf({ ...base, selfHostedPercent: 100 }).match(/^\s+\d+ selfhosted;$/gm)).toHaveLength(100);
  });

  it('refuses shares outside 0-100 or finer than the 1 % buckets', () => {
    expect(() => renderNginxConf({ ...base, selfHostedPercent: 101 })).toThrow(/0-100/);
    expect(() => renderNginxConf({ ...base, selfHostedPercent: 12.5 })).toThrow(/whole percent/);
  });

  it('speaks TLS to a hosted hostname with SNI, verification and its own Host header, re-resolving it at run time', () => {
    const conf = renderNginxConf(base);
    for (const line of [
      'proxy_ssl_server_name on;',
      'proxy_ssl_name api.jina.ai;',
      'proxy_ssl_verify on;',
      'proxy_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;',
      'proxy_set_header Host api.jina.ai;',
      'resolver 127.0.0.11 valid=30s ipv6=off;',
    ]) {
      expect(conf).toContain(line);
    }
    expect(conf).not.toContain('upstream hosted');
    const local = renderNginxConf({ ...base, hostedUrl: 'http://127.0.0.1:9000/embed' });
    expect(local).toContain('upstream hosted {\n        server 127.0.0.1:9000 max_fails=0;');
    expect(local).toContain('rewrite ^ /embed break;');
    expect(local).not.toContain('proxy_ssl_verify');
  });

  it('changes the config id whenever the config changes', () => {
    const id = (p: number) => /embedctl-config-id: (\w+)/.exec(renderNginxConf({ ...base, selfHostedPercent: p }))![1];
    expect(id(25)).toBe(id(25));
    expect(id(25)).not.toBe(id(50));
  });

  it('checks hosted URLs and keys without echoing the key', () => {
    expect(() => parseHostedUrl('ftp://x')).toThrow(/http or https/);
    expect(() => parseHostedUrl('https://user:pw@x/v1')).toThrow(/credentials/);
    expect(parseHostedUrl('https://api.openai.com')).toMatchObject({ host: 'api.openai.com', port: 443, path: '/v1/embeddings', dynamic: true });
    const err = (() => {
      try {
        renderHostedAuthSnippet('sk-"; evil');
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err?.message).toMatch(/cannot carry/);
    expect(err?.message).not.toContain('evil');
  });
});
