import { afterAll, describe, expect, it } from 'vitest';
import { latin1, outcome, psqlAsOwner } from './helpers/filter-attack';

/**
 * Sixth look at the restore filter (helper-18, on the fixes of attack-4/5): a dollar-quote tag made of
 * a multibyte character in SJIS/BIG5/GBK (psql reads its trailing bytes masked, the lexer read no tag:
 * a COMMIT went through, shown with real psql), now refused; a `$` after a number read differently
 * depending on the chunking, now a dollar quote as in psql; and the refusal of a long statement naming
 * set_config, which now says so.
 */

const TAIL = 'CREATE TABLE public.escaped (v int);\nSELECT 1/0;\n';
const WHOLE = false;

describe('psql runs what the filter took for part of a string (sixth look)', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterAll(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  // dollarTagAt is not multibyte-aware: in SJIS/BIG5/GBK/UHC a tag whose character has a trail byte that is not
  // [A-Za-z0-9_] (here 0x40 '@') is no tag to the lexer; psql (trail bytes read as 0xFF) and the server both take
  // $<U+3000>$ as a dollar quote. So the lexer opens a '...' inside it and hides `; COMMIT;` (real psql commits `escaped`).
  it.each([
    ['SJIS: $<0x81 0x40>$ dollar tag', `SET client_encoding = 'SJIS';\nSELECT $\x81\x40$ ' $\x81\x40$; COMMIT; SELECT 1 /* ' */;\n${TAIL}`, WHOLE],
    ['SJIS: $<0x81 0x40>$ dollar tag, byte by byte', `SET client_encoding = 'SJIS';\nSELECT $\x81\x40$ ' $\x81\x40$; COMMIT; SELECT 1 /* ' */;\n${TAIL}`, true],
    ['BIG5: $<0xa4 0x40>$ dollar tag', `SET client_encoding = 'BIG5';\nSELECT $\xa4\x40$ ' $\xa4\x40$; COMMIT; SELECT 1 /* ' */;\n${TAIL}`, WHOLE],
    ['GBK: $<0x81 0x40>$ dollar tag', `SET client_encoding = 'GBK';\nSELECT $\x81\x40$ ' $\x81\x40$; COMMIT; SELECT 1 /* ' */;\n${TAIL}`, 7],
  ] as Array<[string, string, boolean | number]>)('%s: refused, or nothing committed', async (_name, dump, chunking) => {
    const result = await outcome(latin1(dump), chunking);
    if ('refused' in result) return;
    const run = await psqlAsOwner(latin1(result.out), cleanup);
    expect(run.tables ?? [], run.stderr).not.toContain('escaped');
  }, 60_000);
});

describe('the lexer reads the same whatever the chunking', () => {
  // A `$` right after a digit opens a dollar quote for psql 15 (`1` is an integer, then `$a$`; real psql sends
  // `SELECT 1$a$;COMMIT;$a$;` as one query). The lexer looks at buf[i - 1]: whole it reads no quote (and leaves the
  // COMMIT out), but where a hold put the `$` at a buffer's start (i = 0) it reads a quote and keeps it.
  it('SELECT 1$a$;COMMIT;$a$; (digit before a dollar tag)', async () => {
    const dump = latin1(`SELECT 1$a$;COMMIT;$a$;\n-- ${'x'.repeat(200)}\n`);
    const whole = await outcome(dump, WHOLE);
    for (const chunking of [true, 3]) expect(await outcome(dump, chunking), String(chunking)).toEqual(whole);
  });
  it('SELECT $1$a$ ... (parameter before a dollar tag)', async () => {
    const dump = latin1(`SELECT $1$a$;COMMIT;$a$;\n-- ${'x'.repeat(200)}\n`);
    const whole = await outcome(dump, WHOLE);
    for (const chunking of [true, 3]) expect(await outcome(dump, chunking), String(chunking)).toEqual(whole);
  });
});

describe('a long statement naming set_config', () => {
  // A view over 1 MiB that selects a column named set_config cannot be read whole: it is refused (under 1 MiB
  // it is read by its tokens and kept), and the refusal names set_config rather than only its length.
  it('a view over 1 MiB selecting a column named set_config: refused, naming set_config', async () => {
    const view = `CREATE VIEW public.v AS\n SELECT t.set_config,\n    '${'x'.repeat(1_200_000)}'::text AS big\n   FROM public.t;\n`;
    expect(await outcome(latin1(view), WHOLE)).toEqual({ refused: expect.stringMatching(/longer than 1 MiB naming set_config/) });
    const short = `CREATE VIEW public.v AS\n SELECT t.set_config\n   FROM public.t;\n`;
    expect(await outcome(latin1(short), WHOLE)).toEqual({ out: short });
  });
});
