import { existsSync, readFileSync } from 'node:fs';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { createRestoreFilter, scanDumpHead, type RestoreFilterOptions, type RestoreFilterSummary } from './index';

/** The shared pg_dump fixtures (they have moved between folders). */
const fixture = (name: string) => {
  const places = ['./fixtures/', '../dump-filter/fixtures/', '../backup/fixtures/'].map((dir) => new URL(dir + name, import.meta.url));
  return readFileSync(places.find((url) => existsSync(url)) ?? places[0]);
};
const databaseDump = fixture('database-dump.sql');
const clusterDump = fixture('cluster-dump.sql');

const defaults: RestoreFilterOptions = {
  databaseName: 'immich',
  existingRoles: new Set(['postgres', 'immich_app']),
  allowedExtensions: new Set(['pg_trgm', 'plpgsql']),
};

interface Result {
  output: Buffer;
  error?: Error;
  summary?: RestoreFilterSummary;
  notices: string[];
}

function feed(chunks: Buffer[], options: Partial<RestoreFilterOptions> = {}): Promise<Result> {
  return new Promise((resolve) => {
    const notices: string[] = [];
    let summary: RestoreFilterSummary | undefined;
    const filter = createRestoreFilter({ ...defaults, onNotice: (m) => notices.push(m), onSummary: (s) => (summary = s), ...options });
    const out: Buffer[] = [];
    filter.on('data', (b: Buffer) => out.push(b));
    filter.on('end', () => resolve({ output: Buffer.concat(out), summary, notices }));
    filter.on('error', (error) => resolve({ output: Buffer.concat(out), error, notices }));
    for (const chunk of chunks) filter.write(chunk);
    filter.end();
  });
}

const run = (input: string | Buffer, options?: Partial<RestoreFilterOptions>) => feed([Buffer.from(input)], options);
async function filtered(input: string | Buffer, options?: Partial<RestoreFilterOptions>): Promise<string> {
  const { output, error } = await run(input, options);
  if (error) throw error;
  return output.toString('latin1');
}
const bytewise = (input: Buffer) => Array.from({ length: input.length }, (_, i) => input.subarray(i, i + 1));

describe('output', () => {
  it('passes an honest pg_dump through byte for byte, apart from the listed lines', async () => {
    const { output, error, summary } = await run(databaseDump);
    expect(error).toBeUndefined();
    const left = /^(\\restrict |\\unrestrict |DROP EXTENSION |CREATE EXTENSION |COMMENT ON EXTENSION |ALTER (SCHEMA|FUNCTION|TABLE) \S+( integer\))? OWNER TO )/;
    const expected = databaseDump
      .toString()
      .split('\n')
      .map((line) => (left.test(line) ? '' : line))
      .join('\n')
      .replace("set_config('search_path', '', false)", "set_config('search_path', 'public, pg_catalog', true)");
    expect(output.toString()).toBe(expected);
    expect(summary).toEqual({
      statements: 48,
      skipped: { database: 0, extension: 3, owner: 8, role: 0, grant: 0, schema: 0 },
      rewritten: 1,
      missingRoles: [],
      extensions: [{ name: 'pg_trgm', schema: 'public' }],
      metaCommandsDropped: 2,
      cluster: false,
      database: null,
    });
  });

  it('gives the same bytes whatever the chunk boundaries', async () => {
    for (const dump of [databaseDump, clusterDump]) {
      const whole = await feed([dump]);
      expect((await feed(bytewise(dump))).output.equals(whole.output)).toBe(true);
    }
    const small = Buffer.from("SELECT 'a'; -- x\r\nALTER TABLE t OWNER TO x;\r\n\\connect db\r\nCOPY t FROM stdin;\r\n\\.\r\n\\! id\nSELECT 1");
    const whole = (await feed([small])).output;
    for (let cut = 1; cut < small.length; cut++) {
      expect((await feed([small.subarray(0, cut), small.subarray(cut)])).output.toString(), `cut at ${cut}`).toBe(whole.toString());
    }
  });

  it('keeps CRLF line ends, in function bodies and COPY data, and LFs of left-out statements', async () => {
    const sql =
      'CREATE FUNCTION f() RETURNS int\r\n  LANGUAGE sql\r\n  AS $$ SELECT\r\n 1 $$;\r\nALTER FUNCTION f()\r\n OWNER TO x;\r\n' +
      'COPY t (a) FROM stdin;\r\nline\r\n\\.\r\nSELECT 2;\r\n';
    expect(await filtered(sql)).toBe(sql.replace('ALTER FUNCTION f()\r\n OWNER TO x;', '\n'));
  });

  it('replaces \\connect, \\c, \\restrict and \\unrestrict lines by an LF and passes other backslash lines', async () => {
    const sql = '\\restrict k1\nSELECT 1;\n\\connect immich\n\\c other\n\\! id\n\\unrestrict k1\n';
    expect(await filtered(sql)).toBe('\nSELECT 1;\n\n\n\\! id\n\n');
  });

  it('passes a statement cut by a backslash command on as it is', async () => {
    expect(await filtered('ALTER TABLE t\n\\connect x\nOWNER TO y;\n')).toBe('ALTER TABLE t\n\nOWNER TO y;\n');
  });

  it('leaves out a GRANT to a role this server lacks and lists the role', async () => {
    const sql = 'GRANT SELECT ON TABLE t TO nobody;\nGRANT SELECT ON TABLE t TO immich_app;\nREVOKE ALL ON t FROM nobody, ghost;\n';
    const { output, summary } = await run(sql);
    expect(output.toString()).toBe('\nGRANT SELECT ON TABLE t TO immich_app;\n\n');
    expect(summary?.missingRoles).toEqual(['nobody', 'ghost']);
    expect(summary?.skipped.grant).toBe(2);
  });

  it('leaves out CREATE/DROP SCHEMA of prepared schemas only', async () => {
    const sql = 'DROP SCHEMA IF EXISTS vectors;\nCREATE SCHEMA vectors;\nCREATE SCHEMA app;\n';
    expect(await filtered(sql, { preparedSchemas: new Set(['vectors']) })).toBe('\n\nCREATE SCHEMA app;\n');
  });

  it('fails on an extension that is not allowed, before passing the statement', async () => {
    const { output, error } = await run('SELECT 1;\nCREATE EXTENSION adminpack;\n');
    expect(error?.message).toMatch(/extension "adminpack", which Lifeboat does not allow in a restore \(allowed: pg_trgm, plpgsql\)/);
    expect(output.toString()).not.toContain('adminpack');
  });

  it('refuses a NUL byte', async () => {
    const { error } = await run('SELECT 1;\0\n');
    expect(error?.message).toMatch(/NUL byte/);
  });

  it('keeps a held statement that grows past 64 KiB, unchanged', async () => {
    const columns = Array.from({ length: 12000 }, (_, i) => `c${i}`).join(', ');
    const sql = `GRANT SELECT ON TABLE t TO nobody, ${columns};\nSELECT 1;\n`;
    expect(await filtered(sql)).toBe(sql);
  });
});

describe('cluster dumps', () => {
  it('keeps only the chosen database, from its \\connect on, with the dump line numbers', async () => {
    const { output, summary, error } = await run(clusterDump);
    expect(error).toBeUndefined();
    const text = output.toString();
    expect(text.split('\n')).toHaveLength(clusterDump.toString().split('\n').length);
    expect(text).not.toMatch(/^(CREATE|DROP|ALTER) (ROLE|DATABASE)|^\\[a-z]|public\.o |template1/m);
    expect(text).toContain('COPY public.assets (id, name, note, data) FROM stdin;\n1\tback\\\\slash');
    expect(text).toContain("COMMENT ON TABLE public.assets IS 'has ; semicolon and \\! bang';");
    // Line for line, what is kept is the dump's own text.
    const original = clusterDump.toString().split('\n');
    text.split('\n').forEach((line, i) => line && expect(line).toBe(original[i].replace("'search_path', '', false", "'search_path', 'public, pg_catalog', true")));
    expect(summary).toMatchObject({ cluster: true, database: 'immich', extensions: [{ name: 'pg_trgm', schema: 'public' }] });
  });

  it('fails at the end without the database, and refuses to guess between several', async () => {
    const { error } = await run(clusterDump, { databaseName: 'photos' });
    expect(error?.message).toMatch(/no database "photos" and several others \("immich", "other"\)/);
  });
});

describe('memory', () => {
  /** Streams `total` bytes of one line after `head` through the filter; returns the largest RSS growth seen. */
  async function rssGrowth(head: string, fill: string, total: number): Promise<number> {
    const chunk = Buffer.alloc(64 * 1024, fill);
    const start = process.memoryUsage().rss;
    let peak = 0;
    let out = 0;
    async function* source() {
      yield Buffer.from(head);
      for (let sent = 0; sent < total; sent += chunk.length) {
        peak = Math.max(peak, process.memoryUsage().rss - start);
        yield chunk;
      }
    }
    const sink = new Writable({
      write(part: Buffer, _encoding, callback) {
        out += part.length;
        callback();
      },
    });
    await pipeline(Readable.from(source()), createRestoreFilter(defaults), sink);
    expect(out).toBeGreaterThanOrEqual(total);
    return peak;
  }

  it('streams a 300 MB line in a statement the rules hold back, with bounded memory', async () => {
    expect(await rssGrowth('ALTER TABLE t ', 'a', 300 * 1024 * 1024)).toBeLessThan(64 * 1024 * 1024);
  });

  it('streams 100 MB lines of COPY data, a backslash command and a comment with bounded memory', async () => {
    expect(await rssGrowth('COPY t FROM stdin;\n', 'x', 100 * 1024 * 1024)).toBeLessThan(64 * 1024 * 1024);
    expect(await rssGrowth('\\! ', 'x', 100 * 1024 * 1024)).toBeLessThan(64 * 1024 * 1024);
    expect(await rssGrowth('-- ', 'x', 100 * 1024 * 1024)).toBeLessThan(64 * 1024 * 1024);
  });
});

describe('scanDumpHead', () => {
  /** The fixture, then `mb` MiB of COPY data, in 64 KiB chunks; counts the bytes handed out. */
  function largeDump(mb: number) {
    const data = Buffer.alloc(mb * 1024 * 1024, '1\tx\n');
    const dump = Buffer.concat([databaseDump, Buffer.from('COPY public.big (a, b) FROM stdin;\n'), data, Buffer.from('\\.\n')]);
    const counter = { read: 0, size: dump.length };
    async function* chunks() {
      for (let i = 0; i < dump.length; i += 64 * 1024) {
        const chunk = dump.subarray(i, i + 64 * 1024);
        counter.read += chunk.length;
        yield chunk;
      }
    }
    return { counter, chunks };
  }

  it('stops at the first statement after the preamble and reports the extensions', async () => {
    const { counter, chunks } = largeDump(32);
    const head = await scanDumpHead(chunks(), defaults);
    expect(head).toEqual({
      extensions: [{ name: 'pg_trgm', schema: 'public' }],
      cluster: false,
      database: null,
      standardConformingStrings: true,
      clientEncoding: 'UTF8',
      complete: false,
    });
    expect(counter.read).toBe(64 * 1024); // the first chunk holds the head
  });

  it('destroys a stream it stops reading', async () => {
    const { chunks } = largeDump(8);
    const stream = Readable.from(chunks());
    await scanDumpHead(stream, defaults);
    expect(stream.destroyed).toBe(true);
  });

  it('reads the chosen section of a cluster dump', async () => {
    const head = await scanDumpHead([clusterDump], defaults as never);
    expect(head).toMatchObject({ extensions: [{ name: 'pg_trgm', schema: 'public' }], cluster: true, database: 'immich', complete: false });
  });

  it('fails as the filter would', async () => {
    await expect(scanDumpHead([Buffer.from('SET x = 1;\nCREATE EXTENSION adminpack;\n')], defaults)).rejects.toThrow(/"adminpack"/);
    await expect(scanDumpHead([clusterDump], { ...defaults, databaseName: 'photos' })).rejects.toThrow(/several others/);
    const onlyPreamble = await scanDumpHead([Buffer.from("SET client_encoding = 'SJIS';\nSET standard_conforming_strings = off;\n")], defaults);
    expect(onlyPreamble).toMatchObject({ complete: true, clientEncoding: 'SJIS', standardConformingStrings: false });
  });
});
