#!/usr/bin/env node
'use strict';
// koi-backend-node-auth: a read-only koi auth backend in Node.js. koi
// starts it like any plugin (the `command` of a plugin block) and talks to
// it through hashicorp/go-plugin's gRPC protocol, which this file speaks:
// check the magic cookie, serve gRPC on 127.0.0.1, print the handshake
// line on stdout, answer go-plugin's health and controller services and
// koi's own (lib/backend.js).
//
//   plugin.js                 serve (as koi runs it)
//   plugin.js validate [-json] check the config block on stdin, as `koi check-config` does
//   plugin.js hash [-ln N]    read a password on stdin, print its scrypt hash

const path = require('node:path');

// Must match sdk.Handshake in sdk/plugin.go; plugin_test.go checks it.
const HANDSHAKE = {
  coreProtocolVersion: 1, // go-plugin's CoreProtocolVersion
  protocolVersion: 1,
  magicCookieKey: 'KOI_PLUGIN',
  magicCookieValue: 'koi-backend-5f0c1e7a9b2d4c68',
};

// How often to check that koi is still there (sdk: parentPollInterval).
const PARENT_POLL_MS = 500;

const cmd = process.argv[2];
if (cmd === 'validate') {
  require('./lib/validate').main(process.argv.slice(3));
} else if (cmd === 'hash') {
  require('./lib/hashcmd').main(process.argv.slice(3));
} else if (cmd !== undefined) {
  process.stderr.write(`unknown command ${JSON.stringify(cmd)}; want validate or hash, or none to serve\n`);
  process.exit(2);
} else {
  serve();
}

function serve() {
  if (process.env[HANDSHAKE.magicCookieKey] !== HANDSHAKE.magicCookieValue) {
    // go-plugin's own words: koi's check-config recognises them.
    process.stderr.write('This binary is a plugin. These are not meant to be executed directly.\n' +
      'Please execute the program that consumes these plugins, which will\n' +
      'load any plugins automatically\n');
    process.exit(1);
  }
  const log = require('./lib/log');
  const grpc = require('@grpc/grpc-js');
  const protoLoader = require('@grpc/proto-loader');
  const { Backend } = require('./lib/backend');

  const proto = (file) => grpc.loadPackageDefinition(protoLoader.loadSync(path.join(__dirname, 'proto', file), {
    keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
  }));
  const koi = proto('koi_backend.proto');
  const health = proto('health.proto').grpc.health.v1;
  const goplugin = proto('go_plugin.proto').plugin;

  // go-plugin's client allows 4 GiB messages; grpc-js's default 4 MiB
  // receive limit would only matter for a huge ListUsers, but match it.
  const server = new grpc.Server({ 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1 });

  const exit = (code, why) => {
    log.info('shutting down', { reason: why });
    server.forceShutdown();
    process.exit(code);
  };

  // go-plugin's Ping and koi's liveness check ask for "plugin"; "" is the
  // server as a whole.
  server.addService(health.Health.service, {
    Check: (call, cb) => {
      const svc = call.request.service;
      if (svc === '' || svc === 'plugin') return cb(null, { status: 'SERVING' });
      cb({ code: grpc.status.NOT_FOUND, details: `unknown service ${svc}` });
    },
  });
  // koi's Kill calls Shutdown, then waits 2 s before SIGKILL: answer, then go.
  server.addService(goplugin.GRPCController.service, {
    Shutdown: (call, cb) => {
      cb(null, {});
      setImmediate(() => exit(0, 'host asked'));
    },
  });
  new Backend().register(server, koi);

  // Plain gRPC on loopback unless the host asks for go-plugin's AutoMTLS
  // (koi does not; lib/mtls.js). The handshake's last field is then our
  // certificate.
  let creds = grpc.ServerCredentials.createInsecure();
  let serverCert = '';
  if (process.env.PLUGIN_CLIENT_CERT) {
    ({ creds, serverCert } = require('./lib/mtls').autoMTLS(grpc, process.env.PLUGIN_CLIENT_CERT));
    log.debug('serving with automatic mTLS');
  }

  server.bindAsync('127.0.0.1:0', creds, (err, port) => {
    if (err) {
      log.error('cannot listen', { error: err.message });
      process.exit(1);
    }
    // The handshake: CORE|APP|network|address|protocol|server-cert.
    // Nothing else may reach stdout before it.
    const h = HANDSHAKE;
    process.stdout.write(`${h.coreProtocolVersion}|${h.protocolVersion}|tcp|127.0.0.1:${port}|grpc|${serverCert}\n`);
  });

  process.on('SIGTERM', () => exit(0, 'SIGTERM'));
  process.on('SIGINT', () => exit(0, 'SIGINT'));
  // Orphans are re-parented, so a changed parent pid means koi is gone,
  // however it died (even SIGKILL).
  const ppid = process.ppid;
  setInterval(() => {
    if (process.ppid !== ppid) exit(1, 'host process is gone');
  }, PARENT_POLL_MS).unref();
}
