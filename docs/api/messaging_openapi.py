"""The messaging part of docs/api/openapi.json (docs/messaging.md): Twilio set-up, messages, e-mail,
website chat, and the webhooks Twilio and Resend call.  gen_openapi.py calls add() before writing
the document.

Operations marked "x-signed" are requests a provider signs (X-Twilio-Signature, svix): the
OpenAPI end-to-end test checks that they are served but does not call them with an example;
tests/e2e/messaging_webhooks.test.mjs and messaging_email.test.mjs call them, signed."""


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
    def op(summary, responses_, params_=None, body=None, tag=None, security=True, desc=None, signed=False):
        o = {"summary": summary, "responses": responses_}
        if desc: o["description"] = desc
        if params_: o["parameters"] = params_
        if body: o["requestBody"] = body
        if tag: o["tags"] = [tag]
        if not security: o["security"] = []
        if signed: o["x-signed"] = True
        return o
    etag_h = {"ETag": {"$ref": "#/components/headers/ETag"}}
    uuid = {"type": "string", "format": "uuid"}
    nuuid = {"type": ["string", "null"], "format": "uuid"}
    sid = lambda p: {"type": "string", "pattern": f"^{p}[0-9a-fA-F]{{32}}$"}
    nsid = lambda p: {"type": ["string", "null"], "pattern": f"^{p}[0-9a-fA-F]{{32}}$"}

    tags += ["messages", "twilio", "email", "chat", "webhooks"]
    responses["502"] = {"description": "Twilio or Resend refused the request (provider_error) or could not be reached (provider_unavailable)",
                        "content": {"application/json": {"schema": ref("Error")}}}

    # ---- Twilio set-up ----
    S["TwilioInput"] = {"type": "object", "additionalProperties": False, "required": ["account_sid", "auth_token"], "properties": {
        "account_sid": sid("AC"), "auth_token": {"type": "string", "minLength": 1, "maxLength": 128, "description": "sealed before it is stored; never answered"}}}
    S["TwilioConfig"] = {"type": "object", "required": ["configured", "numbers", "webhooks"], "properties": {
        "configured": {"type": "boolean"}, "account_sid": nsid("AC"), "api_key_sid": nsid("SK"), "twiml_app_sid": nsid("AP"),
        "numbers": {"type": "array", "items": {"type": "object", "required": ["number"], "properties": {"number": {"type": "string", "description": "E.164"}, "sid": nsid("PN"), "assigned_to": nuuid}}},
        "webhooks": {"type": "object", "description": "the URLs configured at Twilio", "properties": {"messaging": {"type": "string"}, "messaging_status": {"type": "string"}, "voice": {"type": "string"}}},
        "changes": {"type": "object", "additionalProperties": {"type": "string", "enum": ["configured", "unchanged", "taken", "invalid", "removed", "number_exists", "limit_reached"]},
                    "description": "PUT only: what happened to each of the account's numbers (taken: another workspace has it)"}}}
    paths["/v1/workspaces/{ws}/twilio"] = {
        "parameters": [P("ws")],
        "get": op("The workspace's Twilio configuration (never a secret)", {"200": resp("the configuration", ref("TwilioConfig"), etag_h), **errs(401, 404, 503)}, tag="twilio"),
        "put": op("Set up Twilio (admin): check the credentials, configure the account, record the numbers", {"200": resp("the configuration", ref("TwilioConfig"), etag_h), **errs(400, 401, 403, 404, 415, 502, 503)},
                  body=jbody(ref("TwilioInput"), {"account_sid": "AC" + "0123456789abcdef" * 2, "auth_token": "0123456789abcdef0123456789abcdef"}), tag="twilio",
                  desc="Checks the credentials against Twilio (400 invalid_credentials), then creates an API key and a TwiML app whose voice URLs point at us, points each of the account's numbers' voice at the app and SMS at /webhooks/twilio/messaging, seals the auth token and the key's secret, and records the numbers (PhoneNumberAdded). A second PUT changes nothing that is already right, at Twilio or in the log. A number another workspace has is left alone and reported as taken."),
        "delete": op("Undo the Twilio set-up (admin)", {"204": {"description": "cleared"}, **errs(401, 403, 404, 412, 503)}, params_=[P("IfMatch")], tag="twilio",
                     desc="Clears the numbers' voice and SMS settings, deletes the TwiML app and the API key at Twilio (best effort), records TwilioCleared, releases the numbers and deletes the sealed secrets."),
    }

    # ---- e-mail set-up ----
    S["EmailInput"] = {"type": "object", "additionalProperties": False, "required": ["from", "api_key"], "properties": {
        "from": {"type": "string", "description": "the sender address (a domain verified at Resend)"}, "from_name": {"type": ["string", "null"], "maxLength": 100},
        "api_key": {"type": "string", "maxLength": 255, "description": "Resend API key; sealed, never answered"},
        "webhook_secret": {"type": "string", "description": "Resend's webhook signing secret (whsec_...); sealed, never answered"}}}
    S["EmailConfig"] = {"type": "object", "required": ["configured", "webhook_url"], "properties": {
        "configured": {"type": "boolean"}, "from": {"type": ["string", "null"]}, "from_name": {"type": ["string", "null"]},
        "webhook_url": {"type": "string", "description": "the URL to give Resend for its webhooks (it names the workspace)"}}}
    paths["/v1/workspaces/{ws}/email"] = {
        "parameters": [P("ws")],
        "get": op("The workspace's e-mail sender (never the key)", {"200": resp("the configuration", ref("EmailConfig"), etag_h), **errs(401, 404, 503)}, tag="email"),
        "put": op("Set the e-mail sender and Resend key (admin)", {"200": resp("the configuration", ref("EmailConfig"), etag_h), **errs(400, 401, 403, 404, 415, 503)},
                  body=jbody(ref("EmailInput"), {"from": "hello@acme.example", "from_name": "Acme Plumbing", "api_key": "re_0123456789abcdef", "webhook_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}), tag="email",
                  desc="The key and the webhook secret are sealed (EmailSenderSet carries a reference). The same values again change nothing."),
        "delete": op("Clear the e-mail sender (admin)", {"204": {"description": "cleared"}, **errs(401, 403, 404, 412, 503)}, params_=[P("IfMatch")], tag="email"),
    }

    # ---- messages ----
    params["message_id"] = {"name": "mid", "in": "path", "required": True, "schema": uuid, "description": "message id"}
    ts = {"type": ["string", "null"], "format": "date-time"}
    S["Message"] = {"type": "object", "required": ["id", "contact_id", "channel", "direction", "body", "media_urls", "status", "created_at"], "properties": {
        "id": uuid, "contact_id": uuid, "channel": {"type": "string", "enum": ["sms", "mms", "whatsapp", "email", "chat"]},
        "direction": {"type": "string", "enum": ["inbound", "outbound"]}, "body": {"type": ["string", "null"]}, "subject": {"type": ["string", "null"]},
        "media_urls": {"type": ["array", "null"], "items": {"type": "string"}}, "from": {"type": ["string", "null"]}, "to": {"type": ["string", "null"]},
        "segments": {"type": ["integer", "null"], "description": "SMS parts (GSM-7: 160, then 153 each; UCS-2: 70, then 67 each); 1 for other channels"},
        "status": {"type": "string", "enum": ["queued", "scheduled", "sent", "delivered", "read", "failed", "undelivered", "received", "cancelled"]},
        "created_at": {"type": ["string", "null"], "format": "date-time"}, "send_at": ts, "provider_id": {"type": ["string", "null"], "description": "Twilio's MessageSid, Resend's id"},
        "error": {"type": ["string", "null"], "description": "the provider's text when it failed"}, "error_code": {"type": ["string", "null"], "description": "the provider's code (e.g. 21610), or ours (opted_out, not_configured, provider_unavailable)"}}}
    S["MessageList"] = {"type": "object", "required": ["items", "next_cursor"], "properties": {"items": {"type": "array", "items": ref("Message")}, "next_cursor": {"type": ["string", "null"]}}}
    S["MessageInput"] = {"type": "object", "additionalProperties": False, "required": ["channel", "body"], "properties": {
        "channel": {"type": "string", "enum": ["sms", "mms", "whatsapp", "email", "chat"]},
        "body": {"type": "string", "maxLength": 100000, "description": "1..1,600 characters (e-mail: up to 100,000); may be empty with media"},
        "media_url": {"type": "string", "description": "an http(s) URL; an SMS with media goes as MMS"}, "media_urls": {"type": "array", "maxItems": 10, "items": {"type": "string"}},
        "subject": {"type": "string", "description": "e-mail only"}, "send_at": {"type": "string", "format": "date-time", "description": "schedule it (up to a year ahead); in the past or absent: now"}}}
    paths["/v1/workspaces/{ws}/contacts/{id}/messages"] = {
        "parameters": [P("ws"), P("contact_id")],
        "get": op("A contact's messages, oldest first", {"200": resp("a page", ref("MessageList")), **errs(400, 401, 404, 503)}, params_=[P("limit"), P("cursor")], tag="messages",
                  desc="From the messages read model, which follows the log a moment behind."),
        "post": op("Send a message (or schedule it with send_at)", {"202": resp("queued or scheduled", ref("Message"), {"Location": {"description": "the message", "schema": {"type": "string"}}}), **errs(400, 401, 404, 409, 415, 503)},
                   params_=[P("IdempotencyKey")], body=jbody(ref("MessageInput"), {"channel": "chat", "body": "Thanks, see you at 9!"}), tag="messages",
                   desc="The outbox sends a queued message once it is in the log (docs/messaging.md); a scheduled one is queued at its time, to the second. 409 opted_out when the contact opted out of the channel (STOP); 409 no_phone / no_email without an address; 409 too_many_pending past 500 waiting messages."),
    }
    paths["/v1/workspaces/{ws}/contacts/{id}/messages/{mid}"] = {
        "parameters": [P("ws"), P("contact_id"), P("message_id")],
        "delete": op("Cancel a scheduled message", {"204": {"description": "cancelled (or already)"}, **errs(401, 404, 409, 412, 503)}, params_=[P("IfMatch")], tag="messages",
                     desc="409 not_scheduled when it went out already."),
    }

    # ---- website chat ----
    S["ChatSessionInput"] = {"type": "object", "additionalProperties": False, "properties": {"name": {"type": "string", "maxLength": 200}, "email": {"type": "string"}}}
    S["ChatSession"] = {"type": "object", "required": ["token", "contact_id", "expires_at"], "properties": {
        "token": {"type": "string", "description": "the visitor's bearer token (30 days): Authorization: Bearer, or ?access_token= for the stream"},
        "contact_id": uuid, "expires_at": {"type": "string", "format": "date-time"}}}
    S["ChatMessageInput"] = {"type": "object", "additionalProperties": False, "required": ["body"], "properties": {"body": {"type": "string", "minLength": 1, "maxLength": 1600}}}
    preflight = lambda: op("CORS preflight", {"204": {"description": "the allowed methods and headers, any origin"}}, tag="chat", security=False)
    visitor_auth = [{"name": "Authorization", "in": "header", "schema": {"type": "string"}, "description": "Bearer <the session's token>"}]
    ws_p = {"name": "ws", "in": "path", "required": True, "schema": uuid, "description": "workspace id"}
    paths["/v1/chat/{ws}/sessions"] = {
        "parameters": [ws_p],
        "post": op("Start a website chat session (public)", {"201": resp("the session", ref("ChatSession")), **errs(400, 404, 415, 429, 503)},
                   body=jbody(ref("ChatSessionInput"), {"name": "Ana Visitor", "email": "ana@example.com"}), tag="chat", security=False,
                   desc="The visitor becomes a contact of the workspace (named after them, or 'Website visitor'); agents answer with POST .../contacts/{id}/messages {channel: chat}. "
                        "Limited per client address (SWITCHBOARD_CHAT_SESSIONS_PER_MINUTE): past it, 429 with Retry-After."),
        "options": preflight(),
    }
    paths["/v1/chat/{ws}/messages"] = {
        "parameters": [ws_p],
        "post": {**op("A visitor's message (visitor token)", {"202": resp("received", ref("Message")), **errs(400, 401, 415, 429, 503)}, params_=visitor_auth,
                      body=jbody(ref("ChatMessageInput"), {"body": "Hi, do you fix boilers?"}), tag="chat", security=False,
                      desc="MessageReceived on the visitor's contact, channel chat. Limited per visitor (SWITCHBOARD_CHAT_MESSAGES_PER_MINUTE): past it, 429 with Retry-After."), "x-visitor-token": True},
        "options": preflight(),
    }
    paths["/v1/chat/{ws}/stream"] = {
        "parameters": [ws_p],
        "get": {**op("The visitor's own conversation as Server-Sent Events (visitor token)", {"200": {"description": "an event stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}}, **errs(400, 401, 503)},
                     params_=[{"name": "access_token", "in": "query", "schema": {"type": "string"}, "description": "the session's token (EventSource cannot set headers)"},
                              {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}}], tag="chat", security=False,
                     desc="The message events (MessageReceived, MessageQueued, MessageSent, MessageDelivered, MessageRead, MessageFailed) of the visitor's contact only, in the shape of the workspace stream (docs/sse.md); resume with Last-Event-ID or ?after=."), "x-visitor-token": True},
        "options": preflight(),
    }

    # ---- webhooks ----
    form = lambda desc: {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object", "additionalProperties": {"type": "string"}}}}, "description": desc}
    twiml = {"description": "recorded (or a repeat)", "content": {"text/xml": {"schema": {"type": "string"}, "example": "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>"}}}
    sig_h = {"name": "X-Twilio-Signature", "in": "header", "required": True, "schema": {"type": "string"},
             "description": "HMAC-SHA1 with the workspace's auth token over SWITCHBOARD_PUBLIC_URL + path + query and every POST parameter sorted by name (SPEC §7)"}
    wh_errs = {"400": E("400"), "403": {"description": "missing or wrong signature, another AccountSid, or a number no workspace has: nothing stored", "content": {"application/json": {"schema": ref("Error")}}},
               "415": E("415"), "503": E("503")}
    paths["/webhooks/twilio/messaging"] = {"post": op("Twilio: an inbound SMS, MMS or WhatsApp message", {"200": twiml, **wh_errs}, params_=[sig_h],
        body=form("Twilio's messaging parameters: MessageSid, AccountSid, From, To (whatsapp: prefixed for WhatsApp), Body, NumMedia, MediaUrlN, ProfileName ..."),
        tag="webhooks", security=False, signed=True,
        desc="Routed by To; the contact for From is found or created (one, however many first messages arrive at once); MessageReceived is answered only once committed. Idempotent on MessageSid.")}
    paths["/webhooks/twilio/messaging/status"] = {"post": op("Twilio: a message status callback", {"200": {"description": "recorded, a repeat, or a status that does not move the message forward"}, **wh_errs},
        params_=[sig_h, {"name": "w", "in": "query", "schema": uuid, "description": "workspace (we set w, c and m in the StatusCallback URL of every message we send; they are covered by the signature)"},
                 {"name": "c", "in": "query", "schema": uuid, "description": "contact"}, {"name": "m", "in": "query", "schema": uuid, "description": "message"}],
        body=form("MessageSid, AccountSid, MessageStatus, ErrorCode, ErrorMessage ..."), tag="webhooks", security=False, signed=True,
        desc="queued/sending/accepted record nothing; sent, delivered, read, failed and undelivered move the message forward only (a late 'sent' after 'delivered' changes nothing).")}
    paths["/webhooks/resend"] = {"post": op("Resend: an e-mail event, svix-signed", {"200": {"description": "recorded, a repeat, or an event type that records nothing"}, **wh_errs},
        params_=[{"name": n, "in": "header", "required": True, "schema": {"type": "string"}} for n in ["svix-id", "svix-timestamp", "svix-signature"]] +
                [{"name": "workspace", "in": "query", "schema": uuid, "description": "the workspace whose webhook secret signs (the URL the e-mail set-up shows)"}],
        body={"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}, tag="webhooks", security=False, signed=True,
        desc="email.sent/delivered/opened/clicked/bounced/failed move the message's status; email.complained opts the contact out of e-mail.")}
