/** What the CLI's entry modules share (launch.ts, the bin, and main.ts, the CLI itself). */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Whether the module at `url` is the script node was started with (not one imported by another). */
export function isMainScript(url: string): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    // The native realpath: one system call, where the JS one stats every path component.
    return realpathSync.native(script) === realpathSync.native(fileURLToPath(url));
  } catch {
    return false;
  }
}
