-- POST with the JSON body from WRK_BODY, so one script serves the JSON and the streamed workloads.
wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY") or "{}"
wrk.headers["Content-Type"] = "application/json"
