// Moved to common/ (the runtime publishes these metrics too); re-exported for src/ readers.
export * from '../../common/service-metrics.js';
