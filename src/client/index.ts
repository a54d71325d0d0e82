// The hybrid client (rollout issue) is exported from here: import { createHybridClient } from 'embedctl/client'.
export {};
