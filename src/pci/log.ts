/** Kernel log lines as dev_warn()/pci_info() would print them: `<driver|bus> <dev_name>: text`. */
import type { Device } from './topology.js';

export type LogLevel = 'warn' | 'info';

export interface KernelLogLine {
  readonly level: LogLevel;
  /** dev_name() of the device the line is printed for (a BDF, or a platform device name). */
  readonly device: string;
  readonly text: string;
  /** The whole line as dmesg shows it (without the timestamp). */
  readonly line: string;
}

export function logLine(level: LogLevel, dev: Device, text: string): KernelLogLine {
  return Object.freeze({ level, device: dev.devName, text, line: `${dev.logPrefix} ${text}` });
}
