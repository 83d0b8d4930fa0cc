// Writes pre-signed Twilio inbound-message webhooks for bench/webhooks.sh: one request per line,
// "<X-Twilio-Signature>\t<form body>", signed with twilio's own helper over PUBLIC_URL + path.
// Distinct MessageSids; From cycles over `contacts` numbers so many contacts receive messages.
//
// Usage: node bench/webhooks_gen.mjs OUT COUNT CONTACTS ACCOUNT_SID AUTH_TOKEN TO PUBLIC_URL [PREFIX]
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import webhooks from 'twilio/lib/webhooks/webhooks.js';

const [out, count, contacts, account, token, to, publicUrl, prefix = '+1415'] = process.argv.slice(2);
const { getExpectedTwilioSignature } = webhooks;
const url = `${publicUrl}/webhooks/twilio/messaging`;
const run = randomBytes(6).toString('hex');
const fd = fs.openSync(out, 'w');
let buf = '';
for (let i = 0; i < Number(count); i++) {
  const from = `${prefix}${String(2000000 + (i % Number(contacts))).padStart(7, '0')}`;
  const sid = `SM${run}${i.toString(16).padStart(20, '0')}`;
  const params = { MessageSid: sid, SmsSid: sid, AccountSid: account, From: from, To: to, Body: `Hello from ${from}, message ${i}`, NumMedia: '0' };
  const body = new URLSearchParams(params).toString();
  buf += `${getExpectedTwilioSignature(token, url, params)}\t${body}\n`;
  if (buf.length > 1 << 20) {
    fs.writeSync(fd, buf);
    buf = '';
  }
}
fs.writeSync(fd, buf);
fs.closeSync(fd);
