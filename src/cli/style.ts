/**
 * Colour for the terminal: Node's util.styleText (Node 20.12+) when standard output is a TTY and
 * NO_COLOR is unset (https://no-color.org: any non-empty value), plain text otherwise. Node 20's
 * styleText does not look at the stream or NO_COLOR itself (that came in Node 22.13), so the
 * decision is made here, once, by the caller.
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
export const ttyStyle: ReportStyle = (kind, text) => (text === '' ? text : styleText(FORMATS[kind], text));
