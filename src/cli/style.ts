/**
 * Colour for the terminal: Node's util.styleText (Node 20.12+) when standard output is a TTY and
 * NO_COLOR is unset (https://no-color.org: any non-empty value), plain text otherwise. The
 * decision is made here, once, by the caller (wantColor), and styleText is told not to make its
 * own (validateStream: false): older Node 20 releases never look, newer ones look at
 * process.stdout, which is not where a test or an embedding host writes.
 */
import { styleText } from 'node:util';
import type { ReportStyle, StyleKind } from '../scenario/report.js';

type Format = Parameters<typeof styleText>[0];

const FORMATS: Record<StyleKind, Format> = {
  ok: 'green',
  fail: ['bold', 'red'],
  errno: 'red',
  expected: 'yellow',
  head: 'bold',
  dim: 'gray',
};

/** Whether to colour a stream: a TTY, and no NO_COLOR in the environment. */
export function wantColor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env['NO_COLOR'] !== undefined && env['NO_COLOR'] !== '') return false;
  return stream.isTTY === true;
}

/** A report style that colours with util.styleText. */
export const ttyStyle: ReportStyle = (kind, text) => (text === '' ? text : style(FORMATS[kind], text, { validateStream: false }));

// Node 20.20's styleText also takes options (validateStream: whether to look at process.stdout
// and the environment itself); @types/node 20 does not declare them yet.
const style = styleText as (format: Format, text: string, options?: { validateStream?: boolean }) => string;
