"""The voice part of docs/api/openapi.json (docs/voice.md): the browser's access token, presence,
the agents board, number owners, a contact's calls, and the voice webhooks Twilio calls.
gen_openapi.py calls add() after messaging_openapi.add().

Webhooks are marked "x-signed": the OpenAPI end-to-end test checks that they are served but does
not call them; tests/e2e/voice_inbound.test.mjs calls them, signed as Twilio signs."""


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
    def jbody(schema, example):
        return {"required": True, "content": {"application/json": {"schema": schema, "example": example}}}
    def op(summary, responses_, params_=None, body=None, tag="voice", security=True, desc=None, signed=False):
        o = {"summary": summary, "responses": responses_, "tags": [tag]}
        if desc: o["description"] = desc
        if params_: o["parameters"] = params_
        if body: o["requestBody"] = body
        if not security: o["security"] = []
        if signed: o["x-signed"] = True
        return o
    etag_h = {"ETag": {"$ref": "#/components/headers/ETag"}}
    uuid = {"type": "string", "format": "uuid"}
    nuuid = {"type": ["string", "null"], "format": "uuid"}
    ts = {"type": ["string", "null"], "format": "date-time"}
    count = {"type": "integer", "minimum": 0}
    nnum = {"type": ["number", "null"]}
    presence = {"type": "string", "enum": ["online", "away", "offline"]}
    identity = {"type": "string", "pattern": "^w[0-9a-f]{32}_u[0-9a-f]{32}$",
                "description": "the member's Twilio Client identity: w<workspace id>_u<user id>, the uuids without dashes"}

    tags += ["voice"]

    S["VoiceToken"] = {"type": "object", "required": ["token", "identity", "expires_at"], "properties": {
        "token": {"type": "string", "description": "a Twilio Voice access token (JWT, HS256, cty twilio-fpa;v=1): iss the API key SID, sub the account SID, jti {keySid}-{iat}, grants {identity, voice: {incoming: {allow: true}, outgoing: {application_sid: the workspace's TwiML app}}}, one hour"},
        "identity": identity, "expires_at": {"type": "string", "format": "date-time"}}}
    paths["/v1/workspaces/{ws}/voice/token"] = {
        "parameters": [P("ws")],
        "get": op("A Twilio Voice access token for the calling member's browser", {"200": resp("the token (Cache-Control: no-store)", ref("VoiceToken")), **errs(401, 404, 409, 503)},
                  desc="Signed with the workspace's API key secret (created by the Twilio set-up). 409 twilio_not_configured before PUT .../twilio. Calls to the member's numbers ring this identity while they are online; calls the browser places go through the workspace's TwiML app (docs/voice.md)."),
    }

    S["PresenceInput"] = {"type": "object", "additionalProperties": False, "required": ["presence"], "properties": {"presence": presence}}
    S["Presence"] = {"type": "object", "required": ["presence"], "properties": {"presence": presence, "changed_at": ts}}
    paths["/v1/me/presence"] = {
        "put": op("Set the caller's presence", {"200": resp("the presence now", ref("Presence"), etag_h), **errs(400, 401, 412, 415, 503)},
                  params_=[P("IfMatch")], body=jbody(ref("PresenceInput"), {"presence": "online"}),
                  desc="online: calls to the member's numbers ring their browser; away or offline: those calls wait in the workspace queue. One presence per user, in every workspace (UserPresenceChanged). The ETag is the user stream's version (GET /v1/me shows it too)."),
    }

    S["Agent"] = {"type": "object", "required": ["user_id", "role", "presence", "identity", "numbers", "active_call"], "properties": {
        "user_id": uuid, "name": {"type": ["string", "null"]}, "email": {"type": ["string", "null"]}, "role": {"type": "string", "enum": ["owner", "admin", "agent"]},
        "presence": presence, "identity": identity, "numbers": {"type": "array", "items": {"type": "string"}, "description": "the numbers whose calls ring this member (E.164)"},
        "active_call": {"type": ["object", "null"], "description": "the member's newest live call on the board", "properties": {"id": uuid, "status": {"type": "string"}}}}}
    S["AgentList"] = {"type": "object", "required": ["items", "next_cursor"], "properties": {"items": {"type": "array", "items": ref("Agent")}, "next_cursor": {"type": "null"}}}
    paths["/v1/workspaces/{ws}/voice/agents"] = {
        "parameters": [P("ws")],
        "get": op("The team as the call board shows it: presence, numbers, live calls", {"200": resp("every member", ref("AgentList")), **errs(401, 404, 503)},
                  desc="Members from the workspace; presence and live calls from the read models (a moment behind the log)."),
    }

    S["VoiceNumber"] = {"type": "object", "required": ["number", "assigned_to"], "properties": {"number": {"type": "string", "description": "E.164"}, "sid": {"type": ["string", "null"]}, "assigned_to": nuuid}}
    S["VoiceNumberList"] = {"type": "object", "required": ["items", "next_cursor"], "properties": {"items": {"type": "array", "items": ref("VoiceNumber")}, "next_cursor": {"type": "null"}}}
    S["VoiceNumberInput"] = {"type": "object", "additionalProperties": False, "required": ["assigned_to"], "properties": {"assigned_to": {**nuuid, "description": "a member, or null for the queue"}}}
    params["number"] = {"name": "number", "in": "path", "required": True, "schema": {"type": "string"}, "description": "one of the workspace's numbers, E.164 (the + may be sent as %2B)"}
    paths["/v1/workspaces/{ws}/voice/numbers"] = {
        "parameters": [P("ws")],
        "get": op("The workspace's numbers and whose browser each rings", {"200": resp("every number", ref("VoiceNumberList"), etag_h), **errs(401, 404, 503)}),
    }
    paths["/v1/workspaces/{ws}/voice/numbers/{number}"] = {
        "parameters": [P("ws"), P("number")],
        "put": op("Give a number to a member, or to the queue (admin)", {"200": resp("the number", ref("VoiceNumber"), etag_h), **errs(400, 401, 403, 404, 412, 415, 503)},
                  params_=[P("IfMatch")], body=jbody(ref("VoiceNumberInput"), {"assigned_to": None}),
                  desc="PhoneNumberAssigned on the workspace. The number's calls ring that member's browser while they are online; a number of nobody's, or of an agent who is away, sends its callers to the workspace queue. 404 unknown_number."),
    }

    S["CallRecording"] = {"type": "object", "required": ["url"], "properties": {"url": {"type": "string"}, "duration_seconds": {"type": ["integer", "null"]}, "recording_sid": {"type": ["string", "null"]}}}
    S["Call"] = {"type": "object", "required": ["id", "direction", "from", "to", "status", "started_at"], "properties": {
        "id": uuid, "contact_id": nuuid, "direction": {"type": "string", "enum": ["inbound", "outbound"]}, "from": {"type": "string"}, "to": {"type": "string"},
        "status": {"type": "string", "enum": ["queued", "ringing", "in-progress", "parked", "completed", "busy", "no-answer", "failed", "cancelled"]},
        "agent_id": nuuid, "parked_slot": {"type": ["integer", "null"]}, "started_at": {"type": "string", "format": "date-time"}, "answered_at": ts, "ended_at": ts,
        "duration_seconds": {"type": ["integer", "null"]}, "recordings": {"type": "array", "items": ref("CallRecording")}}}
    S["CallList"] = {"type": "object", "required": ["items", "next_cursor"], "properties": {"items": {"type": "array", "items": ref("Call")}, "next_cursor": {"type": ["string", "null"]}}}
    paths["/v1/workspaces/{ws}/contacts/{id}/calls"] = {
        "parameters": [P("ws"), P("contact_id")],
        "get": op("A contact's calls, newest first (their call timeline)", {"200": resp("a page", ref("CallList")), **errs(400, 401, 404, 503)}, params_=[P("limit"), P("cursor")],
                  desc="From the calls read model, a moment behind the log. 404 contact_not_found."),
    }

    # The analytics report's calls grow a per-agent part.
    calls = S["Analytics"]["properties"]["calls"]
    calls["properties"]["by_agent"] = {"type": "array", "description": "per agent the call was last with (rung, answered, unparked or transferred to)", "items": {
        "type": "object", "required": ["agent_id", "total", "answered", "missed", "average_duration_seconds"],
        "properties": {"agent_id": uuid, "total": count, "answered": count, "missed": count, "average_duration_seconds": nnum}}}

    # ---- webhooks ----
    form = lambda desc: {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object", "additionalProperties": {"type": "string"}}}}, "description": desc}
    twiml = lambda desc, example: {"description": desc, "content": {"text/xml": {"schema": {"type": "string"}, "example": example}}}
    sig_h = {"name": "X-Twilio-Signature", "in": "header", "required": True, "schema": {"type": "string"},
             "description": "HMAC-SHA1 with the workspace's auth token over SWITCHBOARD_PUBLIC_URL + path + query and every POST parameter sorted by name (SPEC §7)"}
    ids = [{"name": "w", "in": "query", "schema": uuid, "description": "workspace (set by us in the URLs our TwiML gives Twilio; covered by the signature)"},
           {"name": "call", "in": "query", "schema": uuid, "description": "our call id (without it, the call is the one its CallSid names)"},
           {"name": "a", "in": "query", "schema": uuid, "description": "the agent the <Dial> rang"},
           {"name": "k", "in": "query", "schema": {"type": "string", "enum": ["in", "out"]}, "description": "out: the <Dial> of a browser's call"}]
    wh_errs = {"400": E("400"), "403": {"description": "missing or wrong signature, another AccountSid, or a number or identity no workspace has: nothing stored", "content": {"application/json": {"schema": ref("Error")}}},
               "415": E("415"), "503": E("503")}
    wh = lambda summary, ok, body_desc, desc, extra=(): {"post": op(summary, {"200": ok, **wh_errs}, params_=[sig_h, *extra], body=form(body_desc), tag="webhooks", security=False, desc=desc, signed=True)}
    paths["/webhooks/twilio/voice"] = wh(
        "Twilio: a call to one of our numbers, or a browser's call through the TwiML app",
        twiml("TwiML routing the call", "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Dial timeout=\"20\" action=\"...\"><Client>w..._u...</Client></Dial></Response>"),
        "CallSid, AccountSid, From, To, CallStatus, Direction ...",
        "CallInitiated (idempotent on CallSid) once the caller's contact is found or created, then: the number's member online -> <Dial timeout action record><Client>identity</Client></Dial>; otherwise <Enqueue waitUrl>the workspace queue</Enqueue>. From client:<identity> (a browser): <Dial callerId=the member's number><Number>To</Number></Dial>, or with To=queue <Dial><Queue url>the workspace queue</Queue></Dial> (take the next waiting caller). docs/voice.md.")
    paths["/webhooks/twilio/voice/dial"] = wh(
        "Twilio: the <Dial>'s end (its action URL)", twiml("what follows: <Hangup/>, or the queue", "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Hangup/></Response>"),
        "CallSid, AccountSid, DialCallStatus, DialCallSid, DialCallDuration ...",
        "answered/completed: AnswerCall and hang up; busy, no-answer, failed, canceled: EnqueueCall and <Enqueue> (a browser's call: RecordCallStatus and hang up).", ids)
    paths["/webhooks/twilio/voice/hold"] = wh(
        "Twilio: what a caller in the queue hears (the <Enqueue> waitUrl)", twiml("<Say> and hold music", "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>...</Say><Play loop=\"0\">...</Play></Response>"),
        "CallSid, AccountSid, QueueSid, QueuePosition ...", "Stores nothing.", ids)
    paths["/webhooks/twilio/voice/dequeued"] = wh(
        "Twilio: a waiting caller is about to be connected to the agent who took the queue (the <Queue> url)", twiml("nothing to play", "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>"),
        "CallSid (the caller's), AccountSid, QueueSid, QueueTime, DequeingCallSid ...",
        "AnswerCall on the caller's call, by the agent in ?a= (a browser's call to To=queue dials <Dial><Queue url>). Once only.", ids)
    paths["/webhooks/twilio/voice/status"] = wh(
        "Twilio: a call status callback", {"description": "recorded, a repeat, or a status the call has moved past"},
        "CallSid, AccountSid, CallStatus, ParentCallSid (a leg our <Dial> placed), CallDuration ...",
        "The call's own callbacks: RecordCallStatus (ringing, in-progress, completed with its duration, busy, no-answer, failed, canceled). A <Dial> leg's: ringing -> CallRinging, answered -> CallAnswered (by the agent in ?a=). Duplicates and late statuses record nothing.", ids)
    paths["/webhooks/twilio/voice/recording"] = wh(
        "Twilio: a recording is ready", {"description": "recorded, or a repeat"},
        "CallSid, AccountSid, RecordingSid, RecordingUrl, RecordingStatus, RecordingDuration ...",
        "RecordingStatus completed: CallRecordingAvailable (once per URL).", ids)
