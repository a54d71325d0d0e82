/**
 * Every file one command writes and another reads, one versioned schema each. Import the one you
 * need from its own module (this index is for discovery and tests).
 */
export { defineContract, defineLines, type Contract, type LinesContract } from './contract.js';
export { stateFile, stateHistory, type StateFileDoc, type StateHistoryLine } from './state.js';
export { rolloutFile, rolloutHistory, type RolloutStateDoc, type RolloutHistoryLine } from './rollout.js';
export { deployFile, type DeployFileDoc } from './deploy.js';
