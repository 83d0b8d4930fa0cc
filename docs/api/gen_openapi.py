#!/usr/bin/env python3
"""Writes docs/api/openapi.json, the OpenAPI 3.1 description of the API.  Edit this file, run it,
and commit both; tests/e2e/api_openapi.test.mjs checks the JSON against the server's routes and
calls every documented operation."""
import json
import os

INTRO = """The JSON API of Switchboard (SPEC §5), over HTTP/1.1 and HTTP/2 on one port (h2c with prior knowledge; ALPN h2 with TLS).

Conventions:
- Every request may carry X-Request-Id (1..128 visible ASCII characters); it is echoed back (a fresh UUID otherwise) and stored as the correlation id of the events the request causes.
- Bodies are JSON objects (Content-Type: application/json, at most 1 MiB, valid UTF-8, nesting at most 32 deep). Unknown fields are refused with 400 unknown_field naming the field: the API is strict, so a typo never passes silently.
- Errors: {"error": {"code", "message", "field"}} with 400, 401, 403, 404, 409, 412, 413, 415, 422, 429 and 503 (429 and 503 carry Retry-After).
- Authorization: Bearer tokens from sign-up or login. On workspace routes a workspace the caller does not belong to, and any id of another workspace's resources, answers 404; a member whose role is too low gets 403.
- Resources backed by an actor carry an ETag (the stream version); If-Match on PATCH/DELETE makes the change conditional (412 on mismatch).
- Idempotency-Key on POST: the same key (per user, kept at least 24 h) returns the first response again and stores nothing twice.
- Lists are {"items": [...], "next_cursor": "..." | null}; pages are keyset pages, stable while new rows arrive.
- Compression: a contact's notes (GET .../contacts/{id}/notes, a first page the server has cached) come with Content-Encoding: gzip when Accept-Encoding takes gzip (weight above 0) and the page is 1 kB or more; every answer of that route carries Vary: Accept-Encoding. Everything else is sent uncompressed: compressing each answer anew would cost the server more CPU than the bytes save (a proxy in front may compress on a slow link).
"""

def ref(n): return {"$ref": f"#/components/schemas/{n}"}
def jbody(schema, example, required=True):
    return {"required": required, "content": {"application/json": {"schema": schema, "example": example}}}
def resp(desc, schema=None, headers=None):
    r = {"description": desc}
    if schema is not None:
        r["content"] = {"application/json": {"schema": schema}}
    if headers: r["headers"] = headers
    return r
E = lambda d: {"$ref": f"#/components/responses/{d}"}
etag_h = {"ETag": {"$ref": "#/components/headers/ETag"}}
loc_h = {"Location": {"description": "the created resource's path", "schema": {"type": "string"}}}
P = lambda n: {"$ref": f"#/components/parameters/{n}"}
# Notes live on their contact's stream: their ETag, and what If-Match on a note compares, is the contact's version.
# The notes thread's cached first page may be sent in gzip (docs/api/README.md, "Compression").
gzip_h = {"Content-Encoding": {"required": False, "description": "gzip when the request's Accept-Encoding takes gzip and the page is a cached first page of 1 kB or more; absent otherwise (identity)", "schema": {"type": "string", "enum": ["gzip"]}},
          "Vary": {"description": "Accept-Encoding, on every answer of this route", "schema": {"type": "string"}}}
note_etag_h = {"ETag": {"description": "the contact's version (notes are kept on the contact's stream); If-Match on a note compares it", "schema": {"type": "string"}}}

def op(summary, responses, params=None, body=None, tags=None, security=True, desc=None):
    o = {"summary": summary, "responses": responses}
    if desc: o["description"] = desc
    if params: o["parameters"] = params
    if body: o["requestBody"] = body
    if tags: o["tags"] = tags
    if not security: o["security"] = []
    return o

def errs(*codes):
    return {str(c): E(str(c)) for c in codes}

ws_errs = (400, 401, 404, 503)
paths = {}
uuid_s = {"type": "string", "format": "uuid"}
paths["/healthz"] = {"get": op("Liveness: the process is up", {"200": resp("up", {"type": "object"})}, security=False, tags=["operations"])}
paths["/readyz"] = {"get": op("Readiness: database reachable and migrations applied", {"200": resp("ready", {"type": "object"}), "503": E("503")}, security=False, tags=["operations"])}
paths["/metrics"] = {"get": op("Prometheus metrics (text format 0.0.4)", {"200": {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}}, security=False, tags=["operations"],
    desc="Requests by route and status, latency histograms, events appended, actors active, database connections, SSE clients, projection lag (when projections run in this process), auth counters.")}

paths["/v1/auth/signup"] = {"post": op("Create an account", {"201": resp("the account and a session", ref("SignupResult")), **errs(400, 409, 415, 429, 503)},
    body=jbody(ref("SignupInput"), {"email": "ana@example.com", "password": "correct horse battery", "name": "Ana Agent"}), tags=["auth"], security=False,
    desc="The password is hashed with argon2id off the event loops. The e-mail must not belong to another account (409 email_taken). Idempotency-Key is not used here: the e-mail itself makes a retry safe. Limited per client address (SWITCHBOARD_SIGNUPS_PER_MINUTE): past it, 429 with Retry-After.")}
paths["/v1/auth/login"] = {"post": op("Log in", {"200": resp("a new session", ref("Session")), **errs(400, 401, 415, 429, 503)},
    body=jbody(ref("LoginInput"), {"email": "ana@example.com", "password": "correct horse battery"}), tags=["auth"], security=False,
    desc="A wrong password and an unknown e-mail get the same 401 invalid_credentials. Failed logins are limited per account and per client address (429 with Retry-After).")}
paths["/v1/auth/logout"] = {"post": op("Revoke the bearer token", {"204": {"description": "revoked"}, **errs(401, 503)}, tags=["auth"])}
paths["/v1/me"] = {
    "get": op("The caller's account", {"200": resp("the user", ref("User"), etag_h), **errs(401, 503)}, tags=["auth"]),
    "patch": op("Change one's name or e-mail address", {"200": resp("the user", ref("User"), etag_h), **errs(400, 401, 403, 409, 412, 415, 503)},
                params=[P("IfMatch")], body=jbody(ref("MePatch"), {"email": "ana.new@example.com", "password": "correct horse battery"}), tags=["auth"],
                desc="A new e-mail address needs the current password (400 required without it, 403 wrong_password when it is wrong) and must not belong to another account (409 email_taken); once changed, the old address is free and logins use the new one. Sessions stay valid. The name alone needs no password; an address equal to the current one changes nothing."),
}

paths["/v1/workspaces"] = {
    "get": op("The caller's workspaces", {"200": resp("a list", ref("WorkspaceList")), **errs(401, 503)}, tags=["workspaces"],
              desc="Read from the members read model: a workspace created a moment ago may take a moment to appear."),
    "post": op("Create a workspace (the caller becomes its owner)", {"201": resp("the workspace", ref("Workspace"), {**etag_h, **loc_h}), **errs(400, 401, 409, 415, 422, 503)},
               params=[P("IdempotencyKey")], body=jbody(ref("WorkspaceInput"), {"name": "Acme Plumbing", "default_country": "US"}), tags=["workspaces"]),
}
paths["/v1/workspaces/{ws}"] = {
    "parameters": [P("ws")],
    "get": op("A workspace", {"200": resp("the workspace", ref("Workspace"), etag_h), **errs(401, 404, 503)}, tags=["workspaces"]),
    "patch": op("Rename a workspace or change its default country (admin)", {"200": resp("the workspace", ref("Workspace"), etag_h), **errs(400, 401, 403, 404, 412, 415, 503)},
                params=[P("IfMatch")], body=jbody(ref("WorkspacePatch"), {"name": "Acme Plumbing & Heating"}), tags=["workspaces"]),
}
paths["/v1/workspaces/{ws}/members"] = {
    "parameters": [P("ws")],
    "get": op("Members", {"200": resp("a list", ref("MemberList"), etag_h), **errs(401, 404, 503)}, tags=["members"]),
    "post": op("Add a member by e-mail (admin; owner to add an owner)", {"201": resp("the new member", ref("Member"), etag_h), "200": resp("already a member with that role", ref("Member"), etag_h), **errs(400, 401, 403, 404, 409, 415, 422, 503)},
               params=[P("IdempotencyKey")], body=jbody(ref("MemberInput"), {"email": "ben@example.com", "role": "agent"}), tags=["members"]),
}
paths["/v1/workspaces/{ws}/members/{user_id}"] = {
    "parameters": [P("ws"), P("user_id")],
    "patch": op("Change a member's role (admin; owner for the owner role)", {"200": resp("the member", ref("Member"), etag_h), **errs(400, 401, 403, 404, 409, 412, 415, 503)},
                params=[P("IfMatch")], body=jbody(ref("RoleInput"), {"role": "admin"}), tags=["members"]),
    "delete": op("Remove a member (admins remove others; anyone may leave)", {"204": {"description": "removed"}, **errs(401, 403, 404, 409, 412, 503)}, params=[P("IfMatch")], tags=["members"]),
}
paths["/v1/workspaces/{ws}/pipeline/stages"] = {
    "parameters": [P("ws")],
    "get": op("Pipeline stages, in order", {"200": resp("a list", ref("StageList"), etag_h), **errs(401, 404, 503)}, tags=["pipeline"]),
    "post": op("Add a stage (admin)", {"201": resp("the stage", ref("Stage"), etag_h), **errs(400, 401, 403, 404, 409, 415, 422, 503)},
               params=[P("IdempotencyKey")], body=jbody(ref("StageInput"), {"name": "Qualified"}), tags=["pipeline"]),
}
paths["/v1/workspaces/{ws}/pipeline/stages/{name}"] = {
    "parameters": [P("ws"), {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}, "description": "the stage's name (any case)"}],
    "delete": op("Remove a stage (admin); contacts in it keep the name", {"204": {"description": "removed"}, **errs(401, 403, 404, 412, 503)}, params=[P("IfMatch")], tags=["pipeline"]),
}
paths["/v1/workspaces/{ws}/auto-replies"] = {
    "parameters": [P("ws")],
    "get": op("Auto-reply rules", {"200": resp("a list", ref("AutoReplyList"), etag_h), **errs(401, 404, 503)}, tags=["auto-replies"]),
}
kw = {"name": "keyword", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 32}, "description": "one word of [a-z0-9] (matched case-insensitively); carrier keywords (STOP, HELP, ...) are reserved"}
paths["/v1/workspaces/{ws}/auto-replies/{keyword}"] = {
    "parameters": [P("ws"), kw],
    "get": op("One rule", {"200": resp("the rule", ref("AutoReply"), etag_h), **errs(401, 404, 503)}, tags=["auto-replies"]),
    "put": op("Set the reply to a keyword (admin)", {"201": resp("created", ref("AutoReply"), etag_h), "200": resp("replaced", ref("AutoReply"), etag_h), **errs(400, 401, 403, 404, 409, 412, 415, 503)},
              params=[P("IfMatch")], body=jbody(ref("AutoReplyInput"), {"reply": "We are open 8am to 6pm, Monday to Friday."}), tags=["auto-replies"]),
    "delete": op("Remove a rule (admin)", {"204": {"description": "removed"}, **errs(401, 403, 404, 412, 503)}, params=[P("IfMatch")], tags=["auto-replies"]),
}
paths["/v1/workspaces/{ws}/contacts"] = {
    "parameters": [P("ws")],
    "get": op("List and search contacts, newest first", {"200": resp("a page", ref("ContactList")), **errs(400, 401, 404, 503)},
              params=[{"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 200}, "description": "a substring of the name, a phone (with or without +) or an e-mail, any case; a phone number typed in any format also matches"},
                      {"name": "stage", "in": "query", "schema": {"type": "string"}}, {"name": "tag", "in": "query", "schema": {"type": "string"}},
                      {"name": "assignee", "in": "query", "schema": uuid_s, "description": "a member's user id"}, P("limit"), P("cursor")],
              tags=["contacts"], desc="From the contacts read model, which follows the log: a contact created a moment ago may take a moment to be listed."),
    "post": op("Create a contact", {"201": resp("the contact", ref("Contact"), {**etag_h, **loc_h}), **errs(400, 401, 404, 409, 415, 422, 503)},
               params=[P("IdempotencyKey")], body=jbody(ref("ContactInput"), {"name": "Bea Lima", "phone": "(415) 555-0100", "email": "bea@example.com", "tags": ["vip"]}), tags=["contacts"],
               desc="Phones are stored in E.164, national formats read in the workspace's default country. A phone number belongs to at most one contact per workspace (409 phone_taken)."),
}
paths["/v1/workspaces/{ws}/contacts/{id}"] = {
    "parameters": [P("ws"), P("contact_id")],
    "get": op("A contact", {"200": resp("the contact", ref("Contact"), etag_h), **errs(401, 404, 503)}, tags=["contacts"]),
    "patch": op("Change a contact; move it through the pipeline with {stage}", {"200": resp("the contact", ref("Contact"), etag_h), **errs(400, 401, 404, 409, 412, 415, 503)},
                params=[P("IfMatch")], body=jbody(ref("ContactPatch"), {"stage": None, "tags": ["vip", "north"]}), tags=["contacts"],
                desc="Fields present replace the current values (phone/phones replace every number); null clears stage and assignee_id."),
    "delete": op("Delete a contact", {"204": {"description": "deleted"}, **errs(401, 404, 412, 503)}, params=[P("IfMatch")], tags=["contacts"]),
}
paths["/v1/workspaces/{ws}/contacts/{id}/notes"] = {
    "parameters": [P("ws"), P("contact_id")],
    "get": op("Notes on a contact, oldest first (private notes only to their author)", {"200": resp("a page", ref("NoteList"), gzip_h), **errs(400, 401, 404, 503)},
              params=[P("limit"), P("cursor")], tags=["notes"],
              desc="From the notes read model, through a per-loop cache that applies new notes as they commit: a note added a moment ago shows at once on a thread the serving loop has cached and the pages after it, and otherwise once the read model has applied it (a few milliseconds; up to SWITCHBOARD_PROJECTIONS_LINGER_MS under load). A cached first page of 1 kB or more is sent in gzip (Content-Encoding: gzip) to clients whose Accept-Encoding takes it, compressed once per version of the page; identity otherwise (no Accept-Encoding, gzip;q=0, identity only). No ETag, so none differs between the codings."),
    "post": op("Add a note; @mentions of members are recognised", {"201": resp("the note", ref("Note"), {**note_etag_h, **loc_h}), **errs(400, 401, 404, 409, 415, 422, 503)},
               params=[P("IdempotencyKey")], body=jbody(ref("NoteInput"), {"body": "Called back; wants a quote by Friday.", "private": False}), tags=["notes"]),
}
paths["/v1/workspaces/{ws}/contacts/{id}/notes/{note_id}"] = {
    "parameters": [P("ws"), P("contact_id"), P("note_id")],
    "patch": op("Edit a note (its author only)", {"200": resp("the note", ref("Note"), note_etag_h), **errs(400, 401, 403, 404, 412, 415, 503)},
                params=[P("IfMatch")], body=jbody(ref("NoteEdit"), {"body": "Called back; quote sent."}), tags=["notes"]),
    "delete": op("Delete a note (its author only)", {"204": {"description": "deleted"}, **errs(401, 403, 404, 412, 503)}, params=[P("IfMatch")], tags=["notes"]),
}
paths["/v1/workspaces/{ws}/analytics"] = {
    "parameters": [P("ws")],
    "get": op("Messages, response times, calls and pipeline counts over a range of days", {"200": resp("the report", ref("Analytics")), **errs(400, 401, 404, 503)},
              params=[{"name": "from", "in": "query", "schema": {"type": "string"}, "description": "a date (YYYY-MM-DD) or RFC 3339 time, read as its UTC day; default 30 days before to"},
                      {"name": "to", "in": "query", "schema": {"type": "string"}, "description": "exclusive; default tomorrow (UTC), so today is included; at most 400 days after from"}],
              tags=["analytics"])}
paths["/v1/workspaces/{ws}/events"] = {
    "parameters": [P("ws")],
    "get": op("The workspace's events in position order", {"200": resp("a page", ref("EventList")), **errs(400, 401, 404, 503)},
              params=[{"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}, "description": "return events after this position (next_cursor of the previous page)"},
                      {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}], tags=["events"]),
}
paths["/v1/workspaces/{ws}/events/stream"] = {
    "parameters": [P("ws")],
    "get": op("Live events as Server-Sent Events (docs/sse.md)", {"200": {"description": "an event stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}}, **errs(400, 401, 404, 503)},
              params=[{"name": "access_token", "in": "query", "schema": {"type": "string"}, "description": "the bearer token, for EventSource (which cannot set headers)"},
                      {"name": "after", "in": "query", "schema": {"type": "integer"}}, {"name": "types", "in": "query", "schema": {"type": "string"}},
                      {"name": "streams", "in": "query", "schema": {"type": "string"}}, {"name": "categories", "in": "query", "schema": {"type": "string"}}],
              tags=["events"], desc="Resume with Last-Event-ID or ?after=; only members may subscribe.")}

S = {}
S["Error"] = {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message", "field"], "properties": {
    "code": {"type": "string", "description": "stable snake_case code, the same word the logs use"}, "message": {"type": "string"}, "field": {"type": ["string", "null"], "description": "the offending field or header, or null"}}}}}
ts = {"type": "string", "format": "date-time", "description": "RFC 3339, UTC"}
uuid = {"type": "string", "format": "uuid"}
nuuid = {"type": ["string", "null"], "format": "uuid"}
S["MePatch"] = {"type": "object", "additionalProperties": False, "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 200}, "email": {"type": "string", "format": "email", "maxLength": 254}, "password": {"type": "string", "maxLength": 1024, "description": "the current password; required with email"}}}
S["User"] = {"type": "object", "required": ["id", "email", "name"], "properties": {"id": uuid, "email": {"type": "string"}, "name": {"type": "string"}, "presence": {"type": "string", "enum": ["online", "away", "offline"]}, "created_at": ts}}
S["SignupInput"] = {"type": "object", "additionalProperties": False, "required": ["email", "password", "name"], "properties": {"email": {"type": "string", "maxLength": 254}, "password": {"type": "string", "minLength": 8, "maxLength": 1024}, "name": {"type": "string", "minLength": 1, "maxLength": 200}}}
S["LoginInput"] = {"type": "object", "additionalProperties": False, "required": ["email", "password"], "properties": {"email": {"type": "string"}, "password": {"type": "string", "maxLength": 1024}}}
S["Session"] = {"type": "object", "required": ["token", "expires_at"], "properties": {"token": {"type": "string", "description": "send as Authorization: Bearer <token>"}, "expires_at": ts, "user_id": uuid}}
S["SignupResult"] = {"type": "object", "required": ["user", "token", "expires_at"], "properties": {"user": ref("User"), "token": {"type": "string"}, "expires_at": ts}}
role = {"type": "string", "enum": ["owner", "admin", "agent"]}
S["Workspace"] = {"type": "object", "required": ["id", "name", "default_country", "role"], "properties": {"id": uuid, "name": {"type": "string"}, "default_country": {"type": "string", "description": "ISO 3166 alpha-2"}, "owner_id": uuid, "created_at": ts, "role": {**role, "description": "the caller's role"}}}
S["WorkspaceInput"] = {"type": "object", "additionalProperties": False, "required": ["name"], "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 200}, "default_country": {"type": "string", "minLength": 2, "maxLength": 2, "default": "US"}}}
S["WorkspacePatch"] = {"type": "object", "additionalProperties": False, "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 200}, "default_country": {"type": "string", "minLength": 2, "maxLength": 2}}}
def listof(n): return {"type": "object", "required": ["items", "next_cursor"], "properties": {"items": {"type": "array", "items": ref(n)}, "next_cursor": {"type": ["string", "null"], "description": "pass as ?cursor= (or ?after= for events) for the next page; null on the last"}}}
S["WorkspaceList"] = listof("Workspace")
S["Member"] = {"type": "object", "required": ["id", "user_id", "email", "role"], "properties": {"id": {**uuid, "description": "the member's user id (as user_id)"}, "user_id": uuid, "email": {"type": "string"}, "name": {"type": ["string", "null"]}, "role": role}}
S["MemberList"] = listof("Member")
S["MemberInput"] = {"type": "object", "additionalProperties": False, "required": ["email", "role"], "properties": {"email": {"type": "string"}, "role": role}}
S["RoleInput"] = {"type": "object", "additionalProperties": False, "required": ["role"], "properties": {"role": role}}
S["Stage"] = {"type": "object", "required": ["id", "name", "position"], "properties": {"id": {"type": "string", "description": "the stage's name, which names it in paths"}, "name": {"type": "string"}, "position": {"type": "integer", "minimum": 0}}}
S["StageList"] = listof("Stage")
S["StageInput"] = {"type": "object", "additionalProperties": False, "required": ["name"], "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 64}, "position": {"type": "integer", "minimum": 0, "description": "0-based; default the end"}}}
S["AutoReply"] = {"type": "object", "required": ["id", "keyword", "reply"], "properties": {"id": {"type": "string", "description": "the keyword, which names the rule in paths"}, "keyword": {"type": "string"}, "reply": {"type": "string"}}}
S["AutoReplyList"] = listof("AutoReply")
S["AutoReplyInput"] = {"type": "object", "additionalProperties": False, "required": ["reply"], "properties": {"reply": {"type": "string", "minLength": 1, "maxLength": 1600}}}
strs = lambda n, m: {"type": "array", "maxItems": n, "items": {"type": "string", "maxLength": m}}
cfields = {"name": {"type": "string", "maxLength": 200}, "phone": {"type": "string"}, "phones": strs(10, 64), "email": {"type": "string"}, "emails": strs(10, 254), "tags": strs(50, 64),
           "stage": {"type": ["string", "null"], "description": "one of the workspace's stages (any case)"}, "assignee_id": {**nuuid, "description": "a member"}}
S["ContactInput"] = {"type": "object", "additionalProperties": False, "description": "at least one of name, phone(s), email(s)", "properties": cfields}
S["ContactPatch"] = {"type": "object", "additionalProperties": False, "properties": cfields}
S["Contact"] = {"type": "object", "required": ["id", "name", "phones", "emails", "tags"], "properties": {"id": uuid, "name": {"type": "string"}, "phone": {"type": ["string", "null"], "description": "the first phone, E.164"}, "email": {"type": ["string", "null"]},
    "phones": {"type": "array", "items": {"type": "string"}}, "emails": {"type": "array", "items": {"type": "string"}}, "tags": {"type": "array", "items": {"type": "string"}}, "stage": {"type": ["string", "null"]}, "assignee_id": nuuid, "created_at": ts,
    "opted_out": {"type": "array", "items": {"type": "string"}, "description": "channels the contact opted out of"}}}
S["ContactList"] = listof("Contact")
count = {"type": "integer", "minimum": 0}
counts = {"type": "object", "additionalProperties": count}
nnum = {"type": ["number", "null"]}
S["Analytics"] = {"type": "object", "required": ["from", "to", "totals", "messages_by_channel", "messages_by_status", "messages_by_day", "response_time_seconds", "calls", "pipeline"], "properties": {
    "from": {"type": "string", "format": "date"}, "to": {"type": "string", "format": "date", "description": "exclusive"},
    "totals": {"type": "object", "required": ["messages", "inbound", "outbound", "calls"], "properties": {k: count for k in ["messages", "inbound", "outbound", "calls"]}},
    "messages_by_channel": counts, "messages_by_status": {**counts, "description": "how many messages reached each status (received, queued, sent, delivered, read, failed, undelivered) on days in the range"},
    "messages_by_day": {"type": "array", "items": {"type": "object", "required": ["date", "inbound", "outbound"], "properties": {"date": {"type": "string", "format": "date"}, "inbound": count, "outbound": count}}},
    "response_time_seconds": {"type": "object", "required": ["average", "median", "p90", "replies"], "description": "from a contact's first unanswered inbound message to the team's next reply", "properties": {"average": nnum, "median": nnum, "p90": nnum, "replies": count}},
    "calls": {"type": "object", "required": ["total", "answered", "missed", "average_duration_seconds"], "properties": {"total": count, "answered": count, "missed": count, "average_duration_seconds": nnum}},
    "pipeline": {"type": "array", "description": "contacts per stage now", "items": {"type": "object", "required": ["stage", "contacts"], "properties": {"stage": {"type": ["string", "null"]}, "contacts": count}}}}}
S["Note"] = {"type": "object", "required": ["id", "contact_id", "body", "private", "created_at"], "properties": {"id": uuid, "contact_id": uuid, "author_id": nuuid, "body": {"type": "string"}, "private": {"type": "boolean"}, "mentions": {"type": "array", "items": uuid}, "created_at": ts, "edited_at": {"type": ["string", "null"], "format": "date-time"}}}
S["NoteList"] = listof("Note")
S["NoteInput"] = {"type": "object", "additionalProperties": False, "required": ["body"], "properties": {"body": {"type": "string", "minLength": 1, "maxLength": 10000}, "private": {"type": "boolean", "default": False}}}
S["NoteEdit"] = {"type": "object", "additionalProperties": False, "required": ["body"], "properties": {"body": {"type": "string", "minLength": 1, "maxLength": 10000}}}
S["Event"] = {"type": "object", "required": ["position", "stream", "type", "version", "recorded_at", "data", "metadata"], "properties": {"position": {"type": "integer"}, "stream": {"type": "string"}, "type": {"type": "string"}, "version": {"type": "integer"},
    "workspace": nuuid, "recorded_at": ts, "data": {"type": "object"}, "metadata": {"type": "object", "description": "correlation_id (the request's X-Request-Id), causation_id, user_id, request_id, source"}}}
S["EventList"] = listof("Event")

responses = {}
for code, desc in [(400, "bad input: the field (or header, or query parameter) is named"), (401, "no valid bearer token (WWW-Authenticate: Bearer)"), (403, "the caller's role does not allow this"),
                   (404, "no such resource, or not in a workspace the caller belongs to"), (409, "conflicts with the current state (or an Idempotency-Key request still in flight)"),
                   (412, "If-Match does not match the current ETag"), (413, "body larger than 1 MiB"), (415, "Content-Type is not application/json"),
                   (422, "Idempotency-Key reused with a different request"), (429, "too many failed logins (Retry-After)"), (503, "overloaded, shutting down or database unavailable (Retry-After)")]:
    responses[str(code)] = {"description": desc, "content": {"application/json": {"schema": ref("Error")}}}

params = {
    "ws": {"name": "ws", "in": "path", "required": True, "schema": uuid, "description": "workspace id"},
    "contact_id": {"name": "id", "in": "path", "required": True, "schema": uuid, "description": "contact id"},
    "note_id": {"name": "note_id", "in": "path", "required": True, "schema": uuid},
    "user_id": {"name": "user_id", "in": "path", "required": True, "schema": uuid, "description": "the member's user id"},
    "limit": {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}},
    "cursor": {"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": "next_cursor of the previous page"},
    "IfMatch": {"name": "If-Match", "in": "header", "schema": {"type": "string"}, "description": "* or a list of ETags (\"<version>\", RFC 9110): the change happens only if the resource is still at one of those versions, else 412. Weak tags, and tags that are not versions, never match; a malformed value or more than 8 versions is a condition that fails (412). * makes no condition (a missing resource still answers 404)."},
    "IdempotencyKey": {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "minLength": 1, "maxLength": 255}, "description": "retries with the same key (per user, kept 24 h) get the first response again and store nothing twice; the same key with a different request gets 422, one still in flight 409"},
}

tags = ["auth", "workspaces", "members", "pipeline", "auto-replies", "contacts", "notes", "analytics", "events", "operations"]
# The messaging routes and webhooks live in their own file (docs/api/messaging_openapi.py).
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import messaging_openapi
messaging_openapi.add(paths, S, params, responses, tags)
# The voice routes and webhooks (docs/api/voice_openapi.py).
import voice_openapi
voice_openapi.add(paths, S, params, responses, tags)
# Calls and call control (docs/api/calls_openapi.py).
import calls_openapi
calls_openapi.add(paths, S, params, responses, tags)

doc = {
    "openapi": "3.1.0",
    "info": {"title": "Switchboard API", "version": "1.0.0", "description": INTRO},
    "servers": [{"url": "http://127.0.0.1:8080"}],
    "security": [{"bearer": []}],
    "tags": [{"name": t} for t in tags],
    "paths": paths,
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "a token from sign-up or login"}},
                   "schemas": S, "responses": responses, "parameters": params,
                   "headers": {"ETag": {"description": "the resource's stream version, \"<version>\"; send it back in If-Match", "schema": {"type": "string"}}}},
}
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'openapi.json'), 'w') as f:
    json.dump(doc, f, indent=2)
    f.write('\n')
