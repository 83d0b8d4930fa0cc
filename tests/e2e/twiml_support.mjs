// TwiML answers read with a real XML parser (Python's xml.etree, strict about well-formedness), so
// the voice tests check the document Twilio would read, not our own string building.
import { execFileSync } from 'node:child_process';

const PARSER = `
import json, sys, xml.etree.ElementTree as ET
data = sys.stdin.buffer.read()
if not data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>'):
    sys.exit('no XML declaration')
def tree(e):
    return {'tag': e.tag, 'attrs': dict(e.attrib), 'text': (e.text or '').strip(), 'children': [tree(c) for c in e]}
print(json.dumps(tree(ET.fromstring(data))))
`;

// The document as {tag, attrs, text, children}; throws when it is not well-formed XML.
export function parseTwiml(xml) {
  const out = execFileSync('python3', ['-c', PARSER], { input: xml, encoding: 'utf8' });
  const doc = JSON.parse(out);
  if (doc.tag !== 'Response') throw new Error(`TwiML root is ${doc.tag}`);
  return doc;
}

// The verbs of a <Response> by name, in order: [{tag, attrs, text, children}].
export const verbs = (doc) => doc.children;
