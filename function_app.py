"""Azure Functions entry point: registers the gateway's routes, its timer and its warm-up; nothing else."""

import azure.functions as func
import azurefunctions.extensions.http.fastapi  # noqa: F401  (Starlette request/response types: streaming)
from azure.functions.warmup import WarmUpContext

from shared import prewarm, routes

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

for _route in routes.ROUTES:
    app.route(route=_route.route, methods=list(_route.methods))(_route.handler)


@app.timer_trigger(schedule=prewarm.SCHEDULE, arg_name="timer", run_on_startup=False, use_monitor=True)
async def prewarm_timer(timer: func.TimerRequest) -> None:
    await prewarm.timer_job()


@app.warm_up_trigger(arg_name="warmup")
async def warm_up(warmup: WarmUpContext) -> None:
    """Plans that support it (Elastic Premium) call this before routing traffic to a new instance."""
    await prewarm.warm_up()
