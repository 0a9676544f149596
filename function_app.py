"""Azure Functions entry point: registers the gateway's routes and its timer, nothing else."""

import azure.functions as func
import azurefunctions.extensions.http.fastapi  # noqa: F401  (streaming HTTP types, NOTES N1)

from shared import prewarm, routes

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

for _route in routes.ROUTES:
    app.route(route=_route.route, methods=list(_route.methods))(_route.handler)


@app.timer_trigger(schedule=prewarm.SCHEDULE, arg_name="timer", run_on_startup=False, use_monitor=True)
async def prewarm_timer(timer: func.TimerRequest) -> None:
    await prewarm.timer_job()
