// Atlassian's own atlassian-jwt, answering the Rust test suite: reads one JSON request on
// stdin, writes one JSON answer on stdout.
//   {"op": "qsh", "cases": [{"method", "url", "baseUrl"}]}      -> ["<qsh>", ...]
//   {"op": "canonical", "cases": [...]}                          -> ["<canonical request>", ...]
//   {"op": "sign", "claims": {...}, "secret": "..."}             -> "<HS256 token>"
//   {"op": "sign_install", "claims": {...}, "privateKey": "PEM", "kid": "..."} -> "<RS256 token>"
//   {"op": "decode", "token": "...", "secret": "..."}            -> claims (verifies HS256)
//   {"op": "numbers", "cases": ["<f64 bits, 16 hex digits>", ...]} -> [String(number), ...]
//     (ECMAScript's own Number-to-string, which RFC 8785 canonical JSON requires)
'use strict';
const jwt = require('atlassian-jwt');

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  const request = JSON.parse(input);
  let answer;
  switch (request.op) {
    case 'qsh':
      answer = request.cases.map((c) => jwt.createQueryStringHash(
        jwt.fromMethodAndUrl(c.method, c.url), false, c.baseUrl || ''));
      break;
    case 'canonical':
      answer = request.cases.map((c) => jwt.createCanonicalRequest(
        jwt.fromMethodAndUrl(c.method, c.url), false, c.baseUrl || ''));
      break;
    case 'sign':
      answer = jwt.encodeSymmetric(request.claims, request.secret);
      break;
    case 'sign_install':
      answer = jwt.encodeAsymmetric(request.claims, request.privateKey,
        jwt.AsymmetricAlgorithm.RS256, { kid: request.kid });
      break;
    case 'decode':
      answer = jwt.decodeSymmetric(request.token, request.secret, jwt.SymmetricAlgorithm.HS256);
      break;
    case 'numbers':
      answer = request.cases.map((bits) => {
        const view = new DataView(new ArrayBuffer(8));
        view.setBigUint64(0, BigInt('0x' + bits));
        return String(view.getFloat64(0));
      });
      break;
    default:
      throw new Error('unknown op ' + request.op);
  }
  process.stdout.write(JSON.stringify(answer));
});
