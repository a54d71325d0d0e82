import {
  BudgetsClient,
  CreateBudgetCommand,
  DeleteBudgetCommand,
  DescribeBudgetCommand,
  type Budget,
  type CreateBudgetCommandInput,
} from '@aws-sdk/client-budgets';
import { awsErrorCode, mapAwsError } from './errors.js';

/** AWS Budgets is global (one endpoint, us-east-1), keyed by account id and budget name. */
export function budgetsClient(): BudgetsClient {
  return new BudgetsClient({ region: 'us-east-1', maxAttempts: 5 });
}

const REGION = 'us-east-1';

export async function findBudget(client: BudgetsClient, accountId: string, name: string): Promise<Budget | undefined> {
  try {
    const out = await client.send(new DescribeBudgetCommand({ AccountId: accountId, BudgetName: name }));
    return out.Budget;
  } catch (err) {
    if (awsErrorCode(err) === 'NotFoundException') return undefined;
    throw mapAwsError(err, { action: 'budgets:ViewBudget', region: REGION });
  }
}

export async function createBudget(client: BudgetsClient, input: CreateBudgetCommandInput): Promise<void> {
  try {
    await client.send(new CreateBudgetCommand(input));
  } catch (err) {
    // The name is the key: a lost response or an earlier run means it is there.
    if (awsErrorCode(err) !== 'DuplicateRecordException') throw mapAwsError(err, { action: 'budgets:ModifyBudget', region: REGION });
  }
}

export async function deleteBudget(client: BudgetsClient, accountId: string, name: string): Promise<'deleted' | 'gone'> {
  try {
    await client.send(new DeleteBudgetCommand({ AccountId: accountId, BudgetName: name }));
    return 'deleted';
  } catch (err) {
    if (awsErrorCode(err) === 'NotFoundException') return 'gone';
    throw mapAwsError(err, { action: 'budgets:ModifyBudget', region: REGION });
  }
}

/** Budgets carry no tags embedctl can read back cheaply: the deployment's tag filter is the mark. */
export function budgetIsOurs(b: Budget | undefined, tagFilter: string): boolean {
  return Boolean(b?.CostFilters?.TagKeyValue?.includes(tagFilter));
}
