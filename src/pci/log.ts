/** Kernel log lines as dev_warn()/pci_info() would print them: `<driver|bus> <dev_name>: text`. */
import type { Device } from './topology.js';

/** The printk level of a line: KERN_WARNING (dev_warn) or KERN_INFO (dev_info). */
export type LogLevel = 'warn' | 'info';

/** One kernel log line the simulated kernel printed (the P2PDMA checks' warnings, for instance). */
export interface KernelLogLine {
  /** Its printk level. */
  readonly level: LogLevel;
  /** dev_name() of the device the line is printed for (a BDF, or a platform device name). */
  readonly device: string;
  /** The message after the prefix. */
  readonly text: string;
  /** The whole line as dmesg shows it (without the timestamp). */
  readonly line: string;
}

/** A log line as dev_warn()/dev_info() would print it for `dev`. */
export function logLine(level: LogLevel, dev: Device, text: string): KernelLogLine {
  return Object.freeze({ level, device: dev.devName, text, line: `${dev.logPrefix} ${text}` });
}
