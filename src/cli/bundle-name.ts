/**
 * The CLI bundle's file name beside the launcher (dist/). The build (rollup.config.mjs) replaces
 * this module with the name it wrote, which carries a hash of the bundle's content: a code cache
 * is named after its bundle, so one made from another build of it is never picked up.
 */
export const CLI_BUNDLE = 'cli-main.cjs';
