"""The call-control part of docs/api/openapi.json (docs/voice_control.md): outbound calls, the call
log and the board, park, unpark, transfer, hang-up, the parking limit, and the TwiML URLs Twilio
fetches for them.  gen_openapi.py calls add() after the messaging part.

Operations marked "x-live-call" need a workspace with Twilio numbers and a call in a given state
(answered, parked ...): the OpenAPI end-to-end test checks that they are served but does not call
them; tests/e2e/calls_control.test.mjs calls every one of them.  "x-signed" operations are Twilio's
(signed), as in the messaging part."""


def add(paths, S, params, responses, tags):
    def ref(n): return {"$ref": f"#/components/schemas/{n}"}
    def E(code): return {"$ref": f"#/components/responses/{code}"}
    def P(n): return {"$ref": f"#/components/parameters/{n}"}
    def errs(*codes): return {str(c): E(str(c)) for c in codes}
    def resp(desc, schema=None, headers=None):
        r = {"description": desc}
        if schema is not None:
            r["content"] = {"application/json": {"schema": schema}}
        if headers:
            r["headers"] = headers
        return r
    def jbody(schema, example, required=True):
        return {"required": required, "content": {"application/json": {"schema": schema, "example": example}}}
    def op(summary, responses_, params_=None, body=None, security=True, desc=None, live=False, signed=False):
        o = {"summary": summary, "responses": responses_, "tags": ["calls"] if not signed else ["webhooks"]}
        if desc: o["description"] = desc
        if params_: o["parameters"] = params_
        if body: o["requestBody"] = body
        if not security: o["security"] = []
        if live: o["x-live-call"] = True
        if signed: o["x-signed"] = True
        return o
    etag_h = {"ETag": {"$ref": "#/components/headers/ETag"}}
    uuid = {"type": "string", "format": "uuid"}
    nuuid = {"type": ["string", "null"], "format": "uuid"}
    ts = {"type": ["string", "null"], "format": "date-time"}
    tags += ["calls"]

    statuses = ["queued", "ringing", "in-progress", "parked", "completed", "busy", "no-answer", "failed", "cancelled"]
    S["Call"] = {"type": "object", "required": ["id", "direction", "from", "to", "status", "started_at"], "properties": {
        "id": uuid, "contact_id": nuuid, "direction": {"type": "string", "enum": ["inbound", "outbound"]},
        "from": {"type": "string", "description": "E.164, or client:<identity> for a browser"}, "to": {"type": "string"},
        "status": {"type": "string", "enum": statuses}, "agent_id": {**nuuid, "description": "the member who has the call (null: the queue, or an outside number it was transferred to)"},
        "parked_slot": {"type": ["integer", "null"], "minimum": 1, "maximum": 999}, "parked_by": nuuid, "parked_at": ts,
        "started_at": {"type": "string", "format": "date-time"}, "answered_at": ts, "ended_at": ts,
        "duration_seconds": {"type": ["integer", "null"], "description": "whole seconds from answered to ended (0 if never answered)"},
        "call_sid": {"type": ["string", "null"], "description": "Twilio's CallSid of the customer's leg, once known"},
        "transfers": {"type": ["integer", "null"], "description": "how many times it was transferred"}}}
    S["CallList"] = {"type": "object", "required": ["items", "next_cursor"], "properties": {"items": {"type": "array", "items": ref("Call")}, "next_cursor": {"type": ["string", "null"]}}}
    S["CallInput"] = {"type": "object", "additionalProperties": False, "properties": {
        "to": {"type": "string", "description": "a phone number (read in the workspace's default country); exactly one of to and contact_id"},
        "contact_id": {**uuid, "description": "call this contact's first number"},
        "agent_id": {**uuid, "description": "the member whose browser takes the call (default: the caller)"}}}
    S["ParkInput"] = {"type": "object", "additionalProperties": False, "properties": {"slot": {"type": "integer", "minimum": 1, "maximum": 999, "description": "default: the lowest free slot"}}}
    S["UnparkInput"] = {"type": "object", "additionalProperties": False, "properties": {"agent_id": {**uuid, "description": "default: the caller"}}}
    S["TransferInput"] = {"type": "object", "additionalProperties": False, "required": ["mode"], "properties": {
        "mode": {"type": "string", "enum": ["cold", "warm"]}, "to_agent": uuid, "to_number": {"type": "string", "description": "exactly one of to_agent and to_number"}}}
    S["CallSettings"] = {"type": "object", "additionalProperties": False, "required": ["parking_limit_seconds"], "properties": {
        "parking_limit_seconds": {"type": "integer", "minimum": 10, "maximum": 86400, "description": "a call parked longer rings the agent who parked it (default 300)"}}}

    params["call_id"] = {"name": "call_id", "in": "path", "required": True, "schema": uuid, "description": "call id"}
    call_r = lambda desc, code="200": {code: resp(desc, ref("Call"), etag_h)}
    ctl_errs = errs(400, 401, 404, 409, 412, 415, 503)

    paths["/v1/workspaces/{ws}/calls"] = {
        "parameters": [P("ws")],
        "get": op("The call log, newest first; status=live is the board", {"200": resp("a page", ref("CallList")), **errs(400, 401, 404, 503)},
                  params_=[{"name": "status", "in": "query", "schema": {"type": "string", "enum": ["live"] + statuses},
                            "description": "live: queued, ringing, in-progress and parked calls (the board: slot, who parked it and since when)"}, P("limit"), P("cursor")],
                  desc="From the calls read model, which follows the log a moment behind."),
        "post": op("Call a customer (outbound)", {**call_r("the call, queued", "201"), **errs(400, 401, 404, 409, 415, 503)},
                   params_=[P("IdempotencyKey")], body=jbody(ref("CallInput"), {"to": "+14155550142"}), live=True,
                   desc="Records CallInitiated; call control then asks Twilio's Calls.json to call the customer from the agent's number (else the workspace's first), with our connect URL: when the customer answers, the agent's browser is dialled (then the workspace's queue if they do not answer). StatusCallback is /webhooks/twilio/voice/status?w=&call= with initiated, ringing, answered and completed. 409 twilio_not_configured, no_number; 404 contact_not_found; 409 no_phone."),
    }
    paths["/v1/workspaces/{ws}/calls/settings"] = {
        "parameters": [P("ws")],
        "get": op("The workspace's call settings", {"200": resp("the settings", ref("CallSettings"), etag_h), **errs(401, 404, 503)}),
        "put": op("Change the call settings (admin)", {"200": resp("the settings", ref("CallSettings"), etag_h), **errs(400, 401, 403, 404, 412, 415, 503)},
                  params_=[P("IfMatch")], body=jbody(ref("CallSettings"), {"parking_limit_seconds": 300})),
    }
    paths["/v1/workspaces/{ws}/calls/{call_id}"] = {
        "parameters": [P("ws"), P("call_id")],
        "get": op("A call", {**call_r("the call"), **errs(401, 404, 503)}, live=True, desc="From the call actor: always current."),
    }
    ctl = lambda path, summary, body, example, desc: {"parameters": [P("ws"), P("call_id")], "post": op(summary, {**call_r("the call after the change"), **ctl_errs},
        params_=[P("IfMatch")], body=jbody(ref(body), example, required=False) if body else None, live=True, desc=desc)}
    paths["/v1/workspaces/{ws}/calls/{call_id}/park"] = ctl("park", "Park a call in the lot", "ParkInput", {},
        "Only a call in progress (409 invalid_transition); 409 slot_taken, no_free_slot. The customer's leg is redirected (Calls/{Sid}.json, Twiml) into a conference of its own, park-<call id>, where they hear hold music until an agent comes in. A call parked past the parking limit rings the agent who parked it.")
    paths["/v1/workspaces/{ws}/calls/{call_id}/unpark"] = ctl("unpark", "Take a call out of the lot", "UnparkInput", {},
        "Only a parked call (409 invalid_transition). The agent's browser is called (Calls.json) into exactly that call's conference. If they do not answer, the call goes back to the lot.")
    paths["/v1/workspaces/{ws}/calls/{call_id}/transfer"] = ctl("transfer", "Transfer a call, cold or warm", "TransferInput", {"to_number": "+14155550143", "mode": "cold"},
        "Only a call in progress (a parked call is unparked first; 409 invalid_transition); 409 same_agent. Cold: the customer's leg dials the target; warm: the customer waits in a conference, the first agent and the target are rung into it, and the first agent hangs up when done. A target who does not answer returns the caller to the first agent, then to the workspace's queue.")
    paths["/v1/workspaces/{ws}/calls/{call_id}/hangup"] = ctl("hangup", "Hang up a call", None, None,
        "409 invalid_transition once it ended. Twilio is asked to end the customer's leg (Status=completed); its completed callback ends the call.")

    form = lambda desc: {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object", "additionalProperties": {"type": "string"}}}}, "description": desc}
    twiml = {"description": "TwiML", "content": {"text/xml": {"schema": {"type": "string"}}}}
    sig_h = {"name": "X-Twilio-Signature", "in": "header", "required": True, "schema": {"type": "string"},
             "description": "HMAC-SHA1 with the workspace's auth token over SWITCHBOARD_PUBLIC_URL + path + query and every POST parameter sorted by name (SPEC §7)"}
    q = lambda n, d, s=uuid: {"name": n, "in": "query", "required": n in ("w", "c"), "schema": s, "description": d}
    ids = [sig_h, q("w", "workspace (ours, covered by the signature)"), q("c", "call")]
    wh_errs = {"400": E("400"), "403": {"description": "missing or wrong signature, or another AccountSid: nothing stored", "content": {"application/json": {"schema": ref("Error")}}},
               "415": E("415"), "503": E("503")}
    paths["/webhooks/twilio/voice/calls/connect"] = {"post": op("Twilio: the customer of an outbound call answered", {"200": twiml, **wh_errs}, params_=ids,
        body=form("CallSid, AccountSid, CallStatus ..."), security=False, signed=True,
        desc="Records the call answered (with its CallSid) and answers a <Dial> of the agent's browser whose action is .../calls/fallback.")}
    paths["/webhooks/twilio/voice/calls/fallback"] = {"post": op("Twilio: a <Dial> of ours ended", {"200": twiml, **wh_errs},
        params_=ids + [q("t", "the transfer this dial was for", {"type": "integer"}), q("s", "1: the transfer target; 2: the way back", {"type": "integer"})],
        body=form("DialCallStatus, CallSid, AccountSid ..."), security=False, signed=True,
        desc="Answered: <Hangup/>. Not answered: the transfer failed (CallTransferFailed), and the caller goes back to the first agent, then the workspace's queue (<Enqueue>).")}
    paths["/webhooks/twilio/voice/calls/target"] = {"post": op("Twilio: a warm transfer target's leg ended", {"200": {"description": "recorded"}, **wh_errs},
        params_=ids + [q("t", "the transfer", {"type": "integer"})], body=form("CallStatus, CallSid, AccountSid ..."), security=False, signed=True,
        desc="no-answer, busy, failed, canceled: CallTransferFailed; call control takes the customer back to the first agent.")}
    paths["/webhooks/twilio/voice/calls/reclaim"] = {"post": op("Twilio: the parker answered the parking-limit ring", {"200": twiml, **wh_errs},
        params_=ids + [q("a", "the agent rung")], body=form("CallSid, AccountSid ..."), security=False, signed=True,
        desc="Unparks the call to them and joins them to it; a call that left the lot meanwhile: <Say> and <Hangup/>.")}
    paths["/webhooks/twilio/voice/calls/unanswered"] = {"post": op("Twilio: an unparking agent's leg ended", {"200": {"description": "recorded"}, **wh_errs},
        params_=ids + [q("u", "when the call was unparked (the CallUnparked event's unparked_at)", {"type": "string"})], body=form("CallStatus, CallSid, AccountSid ..."), security=False, signed=True,
        desc="no-answer, busy, failed, canceled: the call goes back to the lot (CallParked, the same slot and parker).")}
