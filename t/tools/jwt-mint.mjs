#!/usr/bin/env node
// Keys and JSON Web Tokens for the sse_auth_jwt tests, made with an
// independent library (npm `jose`, from t/browser/node_modules) so that the
// module's verifier is checked against someone else's signer.
//
// One run per test file: a JSON request on stdin, a JSON answer on stdout.
//
//   {
//     "dir":  "/tmp/x/keys",          key files are written to / read from here
//     "keys": [                       keys to generate (written to dir)
//       {"name": "rsa1", "type": "RSA"},            2048-bit
//       {"name": "ec256", "type": "EC", "crv": "P-256"},  (or P-384)
//       {"name": "ed", "type": "OKP"},              Ed25519
//       {"name": "hs", "type": "oct", "bytes": 64}, random secret bytes
//       {"name": "hs2", "type": "oct", "secret": "text\n"}  exactly these bytes
//     ],
//     "jwks": [                       JWKS files of public keys (secrets as oct)
//       {"file": "set.jwks", "keys": [{"key": "rsa1", "kid": "r1", "alg": "RS256"}]}
//     ],
//     "tokens": {                     name -> token spec
//       "ok": {"key": "rsa1", "alg": "RS256", "kid": "r1",
//              "claims": {"exp": 1900000000, "sse": {"subscribe": ["a"]}},
//              "header": {"typ": "JWT"}}
//     }
//   }
//
// Files per generated key <name>: asymmetric keys get <name>.pem (the SPKI
// public key), <name>.key.pem (PKCS#8 private key, for later runs) and
// <name>.jwk (the public JWK); secrets get <name>.secret (the raw bytes).
// A token's key that was not generated in this run is read from those files.
//
// A token spec:
//   key          the signing key's name
//   secret_file  instead of key: sign with HMAC, the secret being this
//                file's bytes (e.g. an RSA public key's PEM: algorithm
//                confusion)
//   alg          the signing algorithm (default: the key's: RS256, ES256,
//                ES384, EdDSA, HS256)
//   kid          put into the header (omitted when absent)
//   claims       the payload object (signed with jose's SignJWT)
//   header       more header members, merged over {alg, kid}
//   payload_raw  the payload's exact JSON text instead of claims
//   header_raw   the header's exact JSON text instead of {alg, kid, ...header}
//   payload_hex, header_hex   the same as bytes in hex (e.g. invalid UTF-8)
//   header_alg   the alg written into the header when it differs from the
//                signing algorithm (the signature is still made with alg)
//   unsigned     true: "header.payload." with no signature (alg none)
// Raw and mismatched forms are signed with node:crypto directly (jose
// refuses to make them); the others with jose.
//
// Answer: {"tokens": {name: "xxx.yyy.zzz", ...}}

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../browser/package.json', import.meta.url));
let jose;
try {
    jose = require('jose');
} catch (e) {
    process.stderr.write("jwt-mint: npm package 'jose' is missing: run 'make npm-deps'\n");
    process.exit(2);
}

const DEFAULT_ALG = { RSA: 'RS256', 'P-256': 'ES256', 'P-384': 'ES384', Ed25519: 'EdDSA', oct: 'HS256' };
const HASH = { 256: 'sha256', 384: 'sha384', 512: 'sha512' };

const b64u = (buf) => Buffer.from(buf).toString('base64url');

async function readStdin() {
    const chunks = [];
    for await (const c of process.stdin) chunks.push(c);
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

// a key in memory: {kind: 'secret', secret} or {kind, privateKey, publicKey, curve}
function describeKey(k) {
    if (k.kind === 'secret') return 'oct';
    return k.curve;
}

function generate(dir, spec) {
    const file = (ext) => path.join(dir, `${spec.name}${ext}`);
    if (spec.type === 'oct') {
        const secret = spec.secret !== undefined ? Buffer.from(spec.secret, 'utf8')
                                                 : crypto.randomBytes(spec.bytes || 64);
        fs.writeFileSync(file('.secret'), secret);
        return { kind: 'secret', secret };
    }
    let pair;
    let curve;
    if (spec.type === 'RSA') {
        pair = crypto.generateKeyPairSync('rsa', { modulusLength: spec.bits || 2048 });
        curve = 'RSA';
    } else if (spec.type === 'EC') {
        curve = spec.crv || 'P-256';
        pair = crypto.generateKeyPairSync('ec', { namedCurve: curve });
    } else if (spec.type === 'OKP') {
        curve = 'Ed25519';
        pair = crypto.generateKeyPairSync('ed25519');
    } else {
        throw new Error(`key ${spec.name}: unknown type ${spec.type}`);
    }
    fs.writeFileSync(file('.pem'), pair.publicKey.export({ type: 'spki', format: 'pem' }));
    fs.writeFileSync(file('.key.pem'), pair.privateKey.export({ type: 'pkcs8', format: 'pem' }),
                     { mode: 0o600 });
    fs.writeFileSync(file('.jwk'), JSON.stringify(pair.publicKey.export({ format: 'jwk' })));
    return { kind: 'pair', privateKey: pair.privateKey, publicKey: pair.publicKey, curve };
}

function load(dir, name) {
    const secret = path.join(dir, `${name}.secret`);
    if (fs.existsSync(secret)) return { kind: 'secret', secret: fs.readFileSync(secret) };
    const privateKey = crypto.createPrivateKey(fs.readFileSync(path.join(dir, `${name}.key.pem`)));
    const publicKey = crypto.createPublicKey(privateKey);
    let curve = 'RSA';
    if (privateKey.asymmetricKeyType === 'ec') curve = privateKey.asymmetricKeyDetails.namedCurve;
    if (privateKey.asymmetricKeyType === 'ed25519') curve = 'Ed25519';
    // node names the NIST curves by their OpenSSL names
    curve = { prime256v1: 'P-256', secp384r1: 'P-384' }[curve] || curve;
    return { kind: 'pair', privateKey, publicKey, curve };
}

function publicJwk(key, { kid, alg }) {
    const jwk = key.kind === 'secret'
        ? { kty: 'oct', k: b64u(key.secret) }
        : key.publicKey.export({ format: 'jwk' });
    if (kid !== undefined) jwk.kid = kid;
    if (alg !== undefined) jwk.alg = alg;
    return jwk;
}

// a signature with node:crypto, for the forms jose will not produce
function rawSign(alg, key, data) {
    const bits = Number(alg.slice(2));
    if (alg.startsWith('HS')) {
        return crypto.createHmac(HASH[bits], key.secret).update(data).digest();
    }
    if (alg.startsWith('RS')) {
        return crypto.sign(HASH[bits], data,
                           { key: key.privateKey, padding: crypto.constants.RSA_PKCS1_PADDING });
    }
    if (alg.startsWith('PS')) {
        return crypto.sign(HASH[bits], data, {
            key: key.privateKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING,
            saltLength: bits / 8,
        });
    }
    if (alg.startsWith('ES')) {
        return crypto.sign(HASH[bits], data, { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
    }
    if (alg === 'EdDSA') return crypto.sign(null, data, key.privateKey);
    throw new Error(`cannot sign with ${alg}`);
}

async function mint(name, spec, keys, dir) {
    let key;
    if (spec.secret_file !== undefined) {
        key = { kind: 'secret', secret: fs.readFileSync(path.resolve(dir, spec.secret_file)) };
    } else if (spec.key !== undefined) {
        key = keys.get(spec.key);
        if (!key) {
            key = load(dir, spec.key);
            keys.set(spec.key, key);
        }
    } else if (!spec.unsigned) {
        throw new Error(`token ${name}: no key`);
    }
    const alg = spec.alg || (key ? DEFAULT_ALG[describeKey(key)] : 'none');
    const header = { alg: spec.header_alg ?? alg, ...spec.header };
    if (spec.kid !== undefined) header.kid = spec.kid;

    const raw = ['header_raw', 'payload_raw', 'header_hex', 'payload_hex', 'header_alg',
                 'unsigned'].some((f) => spec[f] !== undefined);
    if (!raw) {
        const keyArg = key.kind === 'secret' ? new Uint8Array(key.secret) : key.privateKey;
        return new jose.SignJWT(spec.claims || {}).setProtectedHeader(header).sign(keyArg);
    }
    const bytes = (hex, text, obj) => (hex !== undefined ? Buffer.from(hex, 'hex')
                                       : Buffer.from(text ?? JSON.stringify(obj), 'utf8'));
    const headerBytes = bytes(spec.header_hex, spec.header_raw, header);
    const payloadBytes = bytes(spec.payload_hex, spec.payload_raw, spec.claims || {});
    const input = `${b64u(headerBytes)}.${b64u(payloadBytes)}`;
    if (spec.unsigned) return `${input}.`;
    return `${input}.${b64u(rawSign(alg, key, Buffer.from(input, 'ascii')))}`;
}

async function main() {
    const req = await readStdin();
    const dir = req.dir;
    if (!dir) throw new Error('no "dir" in the request');
    fs.mkdirSync(dir, { recursive: true });

    const keys = new Map();
    for (const spec of req.keys || []) keys.set(spec.name, generate(dir, spec));

    for (const set of req.jwks || []) {
        const out = [];
        for (const entry of set.keys) {
            let key = keys.get(entry.key);
            if (!key) {
                key = load(dir, entry.key);
                keys.set(entry.key, key);
            }
            out.push(publicJwk(key, entry));
        }
        fs.writeFileSync(path.resolve(dir, set.file), JSON.stringify({ keys: out }, null, 1));
    }

    const tokens = {};
    for (const [name, spec] of Object.entries(req.tokens || {})) {
        tokens[name] = await mint(name, spec, keys, dir);
    }
    process.stdout.write(JSON.stringify({ tokens }) + '\n');
}

main().catch((e) => {
    process.stderr.write(`jwt-mint: ${e.stack || e}\n`);
    process.exit(1);
});
