import { readJson, send } from '../http.js';
import { ApiError } from './errors.js';
import type { Route } from './types.js';

/**
 * POST /admin/fault (only with --fault-injection on, loopback clients only): {"status": 500,
 * "rate": 1} makes that share of embedding requests fail with that status, {"status": 0} clears
 * it. For rollback drills (`embedctl rehearse`).
 */
export const faultRoute: Route = {
  paths: ['/admin/fault'],
  methods: ['POST'],
  async handle(req, res, ctx) {
    const remote = req.socket.remoteAddress ?? '';
    if (!/^(127\.|::1$|::ffff:127\.)/.test(remote)) throw new ApiError(403, 'fault injection is accepted from loopback only', null, 'forbidden');
    await ctx.hooks.auth.authenticate(req);
    let body: { status?: unknown; rate?: unknown };
    try {
      body = (await readJson(req, ctx.maxBodyBytes, '{"status": 500, "rate": 1}')) as typeof body;
    } catch {
      throw new ApiError(400, 'send {"status": 500, "rate": 1} or {"status": 0}', null, 'invalid_json');
    }
    const status = Number(body?.status ?? 0);
    const rate = body?.rate === undefined ? 1 : Number(body.rate);
    if (!(status === 0 || (Number.isInteger(status) && status >= 400 && status <= 599))) throw new ApiError(400, '"status" must be 0 (clear) or an HTTP error status 400-599', 'status', 'invalid_value');
    if (!(rate >= 0 && rate <= 1)) throw new ApiError(400, '"rate" must be between 0 and 1', 'rate', 'invalid_value');
    ctx.fault.status = status;
    ctx.fault.rate = rate;
    ctx.log({ event: 'fault', status, rate });
    send(res, 200, { fault: { status, rate } });
  },
};
