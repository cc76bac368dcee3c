/** Scenario text (YAML or JSON) to a validated Scenario. */
import type { Scenario } from './schema.js';
import { seedPreparsed } from './builtin/seed-parsed.js';
import { SEED_SCENARIO, SEED_SCENARIO_FILE } from './builtin/seed-scenario.js';
import { ScenarioError, SourceDoc, type SourceFormat } from './source.js';
import { readProblem, type ReadText } from './topology-source.js';
import { validateScenario, type ValidateOptions } from './validate.js';

/** Options of {@link parseScenario}: validation options plus the text's format. */
export interface ParseOptions extends ValidateOptions {
  /** Default: from the file name (.json is JSON, anything else YAML). */
  format?: SourceFormat;
}

/**
 * Parses and validates a scenario text (YAML or JSON); `file` names it in diagnostics and
 * anchors relative topology file names.
 * @throws {@link ScenarioError} with every problem found, each at its line and column (syntax,
 *   unknown field or op, wrong type, unknown device or object name, bad topology).
 */
export function parseScenario(text: string, file = '<inline>', opts: ParseOptions = {}): Scenario {
  if (typeof file !== 'string') throw new ScenarioError([{ file: '<inline>', path: '', message: 'the file name must be a string' }]);
  if (typeof opts !== 'object' || opts === null) throw new ScenarioError([{ file, path: '', message: 'options must be an object' }]);
  if (opts.format !== undefined && opts.format !== 'yaml' && opts.format !== 'json') {
    throw new ScenarioError([{ file, path: '', message: "format must be 'yaml' or 'json'" }]);
  }
  // The built-in seed was parsed at build time (scripts/gen-seed.mjs): no YAML parser runs for it.
  const doc = text === SEED_SCENARIO && file === SEED_SCENARIO_FILE && (opts.format ?? 'yaml') === 'yaml'
    ? SourceDoc.fromPreparsed(text, file, seedPreparsed())
    : SourceDoc.parse(text, file, opts.format);
  return validateScenario(doc, opts);
}

/**
 * Reads, parses and validates a scenario file; topology files it names are read with `read` too.
 * @throws {@link ScenarioError} when the file cannot be read, or as {@link parseScenario}.
 */
export function loadScenarioFile(file: string, read: ReadText, opts: Omit<ParseOptions, 'readText'> = {}): Scenario {
  let text: string;
  try {
    text = read(file);
  } catch (e) {
    throw new ScenarioError([{ file, path: '', message: `cannot read the file: ${readProblem(e)}` }]);
  }
  return parseScenario(text, file, { ...opts, readText: read });
}
