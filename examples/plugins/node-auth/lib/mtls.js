'use strict';
// go-plugin's AutoMTLS, plugin side (go-plugin's server.go and mtls.go):
// the host puts its self-signed certificate, PEM, in PLUGIN_CLIENT_CERT;
// the plugin makes a self-signed certificate of its own for "localhost",
// serves TLS that requires the host's certificate, and sends its own in
// the handshake line as base64 DER without padding. koi itself does not
// turn AutoMTLS on; other go-plugin hosts may.
//
// Node can make keys and signatures but not certificates, so the few
// DER structures of one are written here rather than pulling in an X.509
// library for a certificate that lives as long as the process.

const crypto = require('node:crypto');

function len(n) {
  if (n < 0x80) return Buffer.from([n]);
  const bytes = [];
  for (; n > 0; n >>= 8) bytes.unshift(n & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
const tlv = (tag, ...parts) => {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([tag]), len(body.length), body]);
};
const seq = (...p) => tlv(0x30, ...p);
const set = (...p) => tlv(0x31, ...p);
const bool = (v) => tlv(0x01, Buffer.from([v ? 0xff : 0]));
const octets = (b) => tlv(0x04, b);
const bits = (b, unused = 0) => tlv(0x03, Buffer.from([unused]), b);
const utf8 = (s) => tlv(0x0c, Buffer.from(s, 'utf8'));
function int(b) {
  // DER integers are minimal (no leading zero byte before a byte below
  // 0x80: OpenSSL and Go refuse the certificate) and signed (a positive
  // one whose top bit is set takes a zero byte in front).
  let i = 0;
  while (i < b.length - 1 && b[i] === 0 && b[i + 1] < 0x80) i++;
  b = b.subarray(i);
  return tlv(0x02, b[0] & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b);
}
function oid(s) {
  const [a, b, ...rest] = s.split('.').map(Number);
  const out = [40 * a + b];
  for (const n of rest) {
    const enc = [n & 0x7f];
    for (let v = n >>> 7; v > 0; v >>>= 7) enc.unshift(0x80 | (v & 0x7f));
    out.push(...enc);
  }
  return tlv(0x06, Buffer.from(out));
}
function time(d) {
  // UTCTime until 2049, GeneralizedTime after (RFC 5280 4.1.2.5).
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(iso.slice(2))) : tlv(0x18, Buffer.from(iso));
}
const ext = (id, critical, value) => seq(oid(id), ...(critical ? [bool(true)] : []), octets(value));

const ECDSA_SHA256 = seq(oid('1.2.840.10045.4.3.2'));
const HOST = 'localhost';

// selfSigned returns {certPEM, keyPEM, der} for a fresh P-256 key: a CA
// certificate for "localhost", for server and client auth, like the one
// go-plugin makes.
function selfSigned() {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const serial = crypto.randomBytes(16);
  serial[0] = (serial[0] & 0x7f) | 0x01; // positive, and never zero (RFC 5280 4.1.2.2)
  const name = seq(set(seq(oid('2.5.4.3'), utf8(HOST))));
  const now = Date.now();
  const tbs = seq(
    tlv(0xa0, int(Buffer.from([2]))), // v3
    int(serial),
    ECDSA_SHA256,
    name,
    seq(time(new Date(now - 30e3)), time(new Date(now + 10 * 365 * 24 * 3600e3))),
    name,
    publicKey.export({ type: 'spki', format: 'der' }),
    tlv(0xa3, seq(
      ext('2.5.29.17', false, seq(tlv(0x82, Buffer.from(HOST)))), // subjectAltName dNSName
      ext('2.5.29.19', true, seq(bool(true))), // basicConstraints CA
      // digitalSignature, keyEncipherment, keyAgreement, keyCertSign
      ext('2.5.29.15', true, bits(Buffer.from([0xac]), 2)),
      ext('2.5.29.37', false, seq(oid('1.3.6.1.5.5.7.3.1'), oid('1.3.6.1.5.5.7.3.2'))), // serverAuth, clientAuth
    )),
  );
  const sig = crypto.sign('sha256', tbs, privateKey); // DER ECDSA-Sig-Value
  const der = seq(tbs, ECDSA_SHA256, bits(sig));
  const b64 = der.toString('base64');
  const certPEM = `-----BEGIN CERTIFICATE-----\n${b64.match(/.{1,64}/g).join('\n')}\n-----END CERTIFICATE-----\n`;
  return { certPEM, keyPEM: privateKey.export({ type: 'pkcs8', format: 'pem' }), der };
}

// serverCredentials returns the grpc-js credentials that require the
// host's certificate, and the handshake's last field.
function autoMTLS(grpc, clientCertPEM) {
  const { certPEM, keyPEM, der } = selfSigned();
  const creds = grpc.ServerCredentials.createSsl(
    Buffer.from(clientCertPEM),
    [{ private_key: Buffer.from(keyPEM), cert_chain: Buffer.from(certPEM) }],
    true, // checkClientCertificate: only the host that started us may talk
  );
  return { creds, serverCert: der.toString('base64').replace(/=+$/, '') };
}

module.exports = { autoMTLS, selfSigned };
