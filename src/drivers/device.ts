/**
 * The importer device an importer passes to DmaBuf.attach / dynamicAttach (attach->dev) is the
 * package's ImporterDevice; the helpers that build and resolve one are the driver kit's. This file
 * keeps the names the drivers exported before.
 */
import type { ImporterDevice } from '../index.js';

export { importerDevice, importerPciFunction, importerDmaDevice } from '../index.js';

/** The ImporterDevice of the package root, under the name the drivers used. */
export type DmaBufImporterDevice = ImporterDevice;
