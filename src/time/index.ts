/** Virtual time: the fabric performance model on the machine clock, PCIe link arithmetic, link sharing and sweeps. */
export * from './model.js';
export * from './pcie.js';
export * from './share.js';
export * from './sweep.js';
