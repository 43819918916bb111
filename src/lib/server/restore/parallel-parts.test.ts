import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { copyTable, freezeCopy } from '../dump-filter/statement-rules';
import { DumpSplitter, type SplitSink } from './dump-splitter';
import { foreignKeyCheckSettings, runPostData } from './parallel-load';
import { classify, joinSmallUnits, planPostData, type PostDataUnit } from './post-data-plan';
import { SpoolBudget, SpoolBuffer } from './spool';

const folder = mkdtempSync(join(tmpdir(), 'lifeboat-spool-test-'));
afterAll(() => rmSync(folder, { recursive: true, force: true }));

const DUMP = `SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', 'pg_catalog, public', false);
CREATE TABLE public.a (id int);
CREATE TABLE "Odd"."t;x" (v text);
COPY public.a (id) FROM stdin;
1
2
\\.
SELECT pg_catalog.setval('public.s', 3, true);
COPY "Odd"."t;x" (v) FROM stdin;
a;b
\\.
SET default_tablespace = '';
ALTER TABLE ONLY public.a ADD CONSTRAINT a_pkey PRIMARY KEY (id);
CREATE INDEX a_idx ON public.a USING btree (id);
CREATE INDEX a_idx2 ON ONLY public.a USING btree (id);
ALTER TABLE ONLY public.b ADD CONSTRAINT b_fk FOREIGN KEY (a_id) REFERENCES public.a(id);
CREATE TRIGGER tr AFTER INSERT ON public.a FOR EACH ROW EXECUTE FUNCTION public.f();
ALTER TABLE ONLY public.a ADD CONSTRAINT x UNIQUE (id), ADD CONSTRAINT y CHECK (id > 0);
`;

async function split(text: string, chunk = 7) {
  const parts = { pre: '', blocks: [] as Array<{ copy: string; table: string | null; settings: string[]; rows: string }>, rest: '', preEnded: 0, ended: 0 };
  const sink: SplitSink = {
    pre: async (bytes) => void (parts.pre += bytes.toString()),
    preEnd: async () => void parts.preEnded++,
    blockStart: async (copy, table, settings) => void parts.blocks.push({ copy: copy.toString(), table, settings, rows: '' }),
    block: async (bytes) => void (parts.blocks.at(-1)!.rows += bytes.toString()),
    blockEnd: async () => undefined,
    rest: async (bytes) => void (parts.rest += bytes.toString()),
    end: async () => void parts.ended++,
  };
  const buffer = Buffer.from(text);
  const chunks = [];
  for (let i = 0; i < buffer.length; i += chunk) chunks.push(buffer.subarray(i, i + chunk));
  await pipeline(Readable.from(chunks), new DumpSplitter(sink));
  return parts;
}

describe('DumpSplitter', () => {
  it('splits a dump into pre-data, COPY blocks with the session settings, and the rest, losing no byte (chunk size does not matter)', async () => {
    for (const size of [1, 7, 64, 100_000]) {
      const parts = await split(DUMP, size);
      expect(parts.preEnded).toBe(1);
      expect(parts.ended).toBe(1);
      expect(parts.pre).toBe(DUMP.slice(0, DUMP.indexOf('COPY public.a')));
      expect(parts.blocks.map((block) => block.table)).toEqual(['"public"."a"', '"Odd"."t;x"']);
      expect(parts.blocks[0].rows).toBe('\n1\n2\n\\.\n');
      expect(parts.blocks[1].copy).toBe('COPY "Odd"."t;x" (v) FROM stdin;');
      expect(parts.blocks[0].settings).toEqual(['SET statement_timeout = 0;', "SELECT pg_catalog.set_config('search_path', 'pg_catalog, public', false);"]);
      const whole = parts.pre + parts.blocks.map((block) => block.copy + block.rows).join('') + parts.rest;
      // The rest starts after the first block, so the text between blocks is in it.
      expect(parts.rest).toContain("SELECT pg_catalog.setval('public.s', 3, true);");
      expect(whole.length).toBe(DUMP.length);
    }
  });

  it('keeps a BEGIN ATOMIC function whole, as the filter passed it (the splitter captures no CREATE)', async () => {
    const text = 'CREATE FUNCTION public.g(x integer) RETURNS integer\n    LANGUAGE sql\n    BEGIN ATOMIC\n SELECT 1;\n SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END;\nEND;\nSELECT 1;\n';
    for (const size of [1, 7, 100_000]) expect((await split(text, size)).pre).toBe(text);
  });

  it('a dump without COPY blocks is all pre-data', async () => {
    const text = 'CREATE TABLE t (a int);\nINSERT INTO t VALUES (1);\n';
    const parts = await split(text);
    expect(parts.pre).toBe(text);
    expect(parts.blocks).toEqual([]);
    expect(parts.preEnded).toBe(1);
  });

  it('reads the table of a COPY statement only when it is a plain name', () => {
    expect(copyTable(Buffer.from('COPY public.assets (id, owner_id) FROM stdin;'))).toBe('"public"."assets"');
    expect(copyTable(Buffer.from('COPY "My ""Schema""".t FROM stdin;'))).toBe('"My ""Schema"""."t"');
    expect(copyTable(Buffer.from('COPY (SELECT 1) TO stdout;'))).toBeNull();
    expect(copyTable(Buffer.from('COPY a.b.c.d FROM stdin;'))).toBeNull();
  });
});

describe('post-data plan', () => {
  it('classifies indexes and keys (beside others), foreign keys (after them) and the rest (serial)', () => {
    expect(classify(Buffer.from('CREATE UNIQUE INDEX i ON public.t USING btree (a);'))).toEqual({ kind: 'key', tables: ['"public"."t"'], shared: true });
    expect(classify(Buffer.from('ALTER TABLE ONLY public.t\n    ADD CONSTRAINT p PRIMARY KEY (a);'))).toEqual({ kind: 'key', tables: ['"public"."t"'], shared: false });
    expect(classify(Buffer.from('ALTER TABLE ONLY public.t ADD CONSTRAINT f FOREIGN KEY (b) REFERENCES public.u(id) ON DELETE CASCADE;'))).toEqual({
      kind: 'foreign-key',
      tables: ['"public"."t"', '"public"."u"'],
      shared: false,
    });
    // Not run apart: CONCURRENTLY, several actions, an unqualified table, anything else.
    expect(classify(Buffer.from('CREATE INDEX CONCURRENTLY i ON public.t (a);'))).toBeNull();
    expect(classify(Buffer.from('ALTER TABLE ONLY public.t ADD CONSTRAINT x UNIQUE (a), ADD CONSTRAINT y CHECK (a > 0);'))).toBeNull();
    expect(classify(Buffer.from('CREATE INDEX i ON t (a);'))).toBeNull();
    expect(classify(Buffer.from('CREATE TRIGGER tr AFTER INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION f();'))).toBeNull();
  });

  it('covers every byte of the rest with units in order, and carries the settings in force', async () => {
    const rest = DUMP.slice(DUMP.indexOf('SET default_tablespace'));
    const units = await planPostData(Readable.from([Buffer.from(rest)]), Buffer.byteLength(rest));
    expect(units.map((unit) => unit.kind)).toEqual(['serial', 'key', 'key', 'key', 'foreign-key', 'serial']);
    expect(units[1].settings).toContain("SET default_tablespace = '';");
    const texts = units.map((unit) => rest.slice(unit.start, unit.end));
    expect(texts[1]).toBe('ALTER TABLE ONLY public.a ADD CONSTRAINT a_pkey PRIMARY KEY (id);');
    expect(texts[5]).toMatch(/^\nCREATE TRIGGER[\s\S]*CHECK \(id > 0\);\n$/);
  });
});

describe('joinSmallUnits', () => {
  it('joins neighbouring units of one kind on the same small table with the same settings, and nothing else', () => {
    const settings: string[] = [];
    const unit = (kind: PostDataUnit['kind'], start: number, tables: string[], shared = false, with_ = settings): PostDataUnit => ({ kind, start, end: start + 10, tables, shared, settings: with_ });
    const units = [
      unit('key', 0, ['"public"."a"']),
      unit('key', 12, ['"public"."a"'], true),
      unit('key', 24, ['"public"."b"']),
      unit('key', 36, ['"public"."big"']),
      unit('key', 48, ['"public"."big"']),
      unit('serial', 60, []),
      unit('key', 72, ['"public"."d"']),
      unit('key', 84, ['"public"."d"'], false, ['SET x = 1;']),
      unit('foreign-key', 96, ['"public"."e"', '"public"."a"']),
      unit('foreign-key', 108, ['"public"."e"', '"public"."b"']),
      unit('foreign-key', 120, ['"public"."e"', '"public"."big"']),
    ];
    const joined = joinSmallUnits(units, (table) => table !== '"public"."big"');
    expect(joined.map((u) => [u.kind, u.start, u.end, u.tables.join(' ')])).toEqual([
      ['key', 0, 22, '"public"."a"'],
      ['key', 24, 34, '"public"."b"'],
      ['key', 36, 46, '"public"."big"'],
      ['key', 48, 58, '"public"."big"'],
      ['serial', 60, 70, ''],
      ['key', 72, 82, '"public"."d"'],
      ['key', 84, 94, '"public"."d"'],
      ['foreign-key', 96, 118, '"public"."e" "public"."a" "public"."b"'],
      ['foreign-key', 120, 130, '"public"."e" "public"."big"'],
    ]);
    expect(joined[0].shared).toBe(false);
  });
});

describe('runPostData', () => {
  const unit = (kind: PostDataUnit['kind'], tables: string[], shared = false): PostDataUnit => ({ kind, tables, shared, start: 0, end: 1, settings: [] });

  it('runs keys of different tables and index builds of the same table side by side, foreign keys after every key, serial units alone', async () => {
    const units = [unit('serial', []), unit('key', ['a']), unit('key', ['b']), unit('key', ['a'], true), unit('key', ['a'], true), unit('foreign-key', ['b', 'a']), unit('serial', [])];
    const events: string[] = [];
    let running = 0;
    let most = 0;
    const overlaps: Array<[number, number]> = [];
    const now = new Set<number>();
    await runPostData(units, 3, {
      failed: () => false,
      run: async (u) => {
        const i = units.indexOf(u);
        for (const other of now) overlaps.push([Math.min(i, other), Math.max(i, other)]);
        now.add(i);
        running++;
        most = Math.max(most, running);
        events.push(`start ${i}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
        events.push(`end ${i}`);
        now.delete(i);
        running--;
      },
    });
    expect(events.filter((event) => event.startsWith('end'))).toHaveLength(units.length);
    // Serial units never overlap anything; the key on a (exclusive) never overlaps the index builds on a.
    for (const [x, y] of overlaps) {
      expect([x, y]).not.toContain(0);
      expect([x, y]).not.toContain(6);
      expect([x, y]).not.toEqual([1, 3]);
      expect([x, y]).not.toEqual([1, 4]);
    }
    expect(overlaps).toContainEqual([3, 4]);
    expect(overlaps).toContainEqual([1, 2]);
    // The foreign key started after every key before it ended.
    const fkStart = events.indexOf('start 5');
    for (const i of [1, 2, 3, 4]) expect(events.indexOf(`end ${i}`)).toBeLessThan(fkStart);
    expect(most).toBeGreaterThan(1);
  });

  it('stops at the first failure', async () => {
    const units = [unit('key', ['a']), unit('key', ['b']), unit('serial', []), unit('key', ['c'])];
    let failed = false;
    const ran: number[] = [];
    const result = runPostData(units, 2, {
      failed: () => failed,
      run: async (u) => {
        ran.push(units.indexOf(u));
        if (units.indexOf(u) === 1) {
          failed = true;
          throw new Error('boom');
        }
      },
    });
    await expect(result).rejects.toThrow('boom');
    expect(ran).not.toContain(3);
  });
});

describe('SpoolBuffer', () => {
  it('gives the bytes back in order, through a spool file when the reader is behind, and removes the file', async () => {
    const budget = new SpoolBudget(folder, 1024 * 1024);
    const buffer = new SpoolBuffer(budget, () => true, 1000);
    const chunks = Array.from({ length: 200 }, (_, i) => Buffer.from(`${i.toString().padStart(4, '0')}:${'x'.repeat(95)}\n`));
    for (const chunk of chunks) await buffer.push(chunk);
    buffer.end();
    expect(budget.peak).toBeGreaterThan(0);
    expect(readdirSync(folder)).toHaveLength(1);
    const out: Buffer[] = [];
    for await (const chunk of buffer.read()) out.push(chunk);
    expect(Buffer.concat(out).toString()).toBe(Buffer.concat(chunks).toString());
    expect(readdirSync(folder)).toEqual([]);
    expect(budget.used).toBe(0);
  });

  it('spools at most its share of one block, then waits for the reader, keeping the order', async () => {
    const budget = new SpoolBudget(folder, 1024 * 1024);
    const buffer = new SpoolBuffer(budget, () => true, 1000, 3000);
    const chunks = Array.from({ length: 10 }, (_, i) => Buffer.alloc(1000, 97 + i));
    let pushed = 0;
    const writer = (async () => {
      for (const chunk of chunks) {
        await buffer.push(chunk);
        pushed++;
      }
      buffer.end();
    })();
    await new Promise((resolve) => setTimeout(resolve, 30));
    // One chunk in memory, three in the spool file, the fifth waits.
    expect(pushed).toBe(4);
    expect(budget.peak).toBe(3000);
    const out: Buffer[] = [];
    for await (const chunk of buffer.read()) out.push(chunk);
    await writer;
    expect(Buffer.concat(out).equals(Buffer.concat(chunks))).toBe(true);
    expect(budget.peak).toBe(3000);
    expect(readdirSync(folder)).toEqual([]);
  });

  it('waits for the reader instead of spooling when reading ahead is not worth it, or the budget is spent', async () => {
    for (const [budgetBytes, readAhead] of [
      [1024 * 1024, false],
      [0, true],
    ] as const) {
      const budget = new SpoolBudget(folder, budgetBytes);
      const buffer = new SpoolBuffer(budget, () => readAhead, 1000);
      const chunk = Buffer.alloc(600, 97);
      await buffer.push(chunk);
      await buffer.push(chunk);
      let third = false;
      const pushing = buffer.push(chunk).then(() => (third = true));
      await new Promise((resolve) => setTimeout(resolve, 30));
      expect(third).toBe(false);
      const reader = buffer.read();
      await reader.next();
      await pushing;
      expect(third).toBe(true);
      expect(budget.peak).toBe(0);
      buffer.end();
      let rest = 0;
      for await (const part of reader) rest += part.length;
      expect(rest).toBe(1200);
    }
  });
});

describe('COPY blocks and foreign keys', () => {
  it('adds FREEZE only to pg_dump\'s own COPY ending, byte for byte, keeping every byte before it', () => {
    const copy = (text: string) => freezeCopy(Buffer.from(text, 'latin1'))?.toString('latin1') ?? null;
    expect(copy('COPY public.assets (id, "from") FROM stdin;')).toBe('COPY public.assets (id, "from") FROM stdin WITH (FREEZE);');
    expect(copy('COPY "Odd"."t;x" (v) FROM stdin;')).toBe('COPY "Odd"."t;x" (v) FROM stdin WITH (FREEZE);');
    expect(copy('COPY public.\xe9t\xe9\xa0(v)\xa0 FROM stdin;')).toBe('COPY public.\xe9t\xe9\xa0(v)\xa0 FROM stdin WITH (FREEZE);');
    // Any other spelling runs as it is: other white space (0xA0 is none to psql or PostgreSQL), case, lines.
    for (const other of ['COPY "Odd"."t;x" (v)\nFROM STDIN ;', 'COPY public.a (v) FROM stdin\xa0;', 'COPY public.a (v)\xa0FROM stdin;', 'COPY public.a (v) FROM stdin\n;', 'COPY public.a (v) FROM  stdin;']) {
      expect(copy(other), other).toBeNull();
    }
    expect(copy('COPY public.a (v) FROM stdin WITH (FORMAT text);')).toBeNull();
    expect(copy('COPY public.a (v) FROM stdin /* x */;')).toBeNull();
    expect(copy('COPY public.a (v) FROM program;')).toBeNull();
  });

  it('turns hash joins off for a foreign key check only when it references the larger table, before PostgreSQL 16', () => {
    expect(foreignKeyCheckSettings('15.18', 27e6, 945e6)).toBe('SET enable_hashjoin = off;\n');
    expect(foreignKeyCheckSettings('15.18', 945e6, 1e3)).toBe('');
    expect(foreignKeyCheckSettings('14.2', undefined, undefined)).toBe('');
    expect(foreignKeyCheckSettings('16.4', 27e6, 945e6)).toBe('');
  });
});
