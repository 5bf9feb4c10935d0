'use strict';
// koi's services from koi_backend.proto, answered the way package sdk's
// plugin side answers them, so that koi (and sdk/sdktest) see the same
// errors from this plugin as from a Go one. Errors travel as gRPC status
// codes (sdk/errors_wire.go): NOT_FOUND is sdk.ErrNotFound,
// PERMISSION_DENIED sdk.ErrReadOnly, INVALID_ARGUMENT sdk.ErrInvalid,
// UNAVAILABLE sdk.ErrUnavailable, UNIMPLEMENTED errors.ErrUnsupported.

const crypto = require('node:crypto');
const { status } = require('@grpc/grpc-js');
const { parseConfig, ConfigError } = require('./config');
const { UserFile } = require('./users');
const scrypt = require('./scrypt');
const log = require('./log');

// CAPABILITIES is what Configure declares: read-only auth that can still
// list its users (koictl user list), no SCRAM (the file holds scrypt
// hashes, not SCRAM keys, so koi offers PLAIN over TLS).
const CAPABILITIES = { auth: 'ACCESS_READ', auth_scram: false, auth_list: true };

// CAPABILITIES as sdk.Capabilities marshals to JSON, for `validate -json`.
const CAPABILITIES_JSON = {
  Auth: { Access: 1, SCRAM: false, List: true },
  Roster: 0, Offline: 0, VCard: 0, Private: 0,
  Archive: { Access: 0, FullText: false },
};

// decoy is what an unknown user's password is checked against: the cost
// of the file's first hash (the usual one), a random key, so that unknown
// users take as long to refuse as known ones and timing does not tell
// which names exist.
const decoyKey = crypto.randomBytes(32);
const decoySalt = crypto.randomBytes(16);
function decoy(users) {
  const model = users.values().next().value ?? { ln: scrypt.DEFAULT_LN, r: 8, p: 1 };
  return { ln: model.ln, r: model.r, p: model.p, salt: decoySalt, key: decoyKey };
}

// wireError turns an error into a status the host maps back to a sentinel.
class WireError extends Error {
  constructor(code, details) {
    super(details);
    this.code = code;
    this.details = details;
  }
}
const invalid = (msg) => new WireError(status.INVALID_ARGUMENT, `invalid request: ${msg}`);

// givenUp reports whether koi gave up on a call before this plugin read
// it (it was stalled meanwhile): koi sends its deadline as a point in time,
// Unix nanoseconds in the metadata koi-deadline, as sdk.Serve honours it.
function givenUp(call) {
  const [v] = call.metadata.get('koi-deadline');
  if (typeof v !== 'string' || !/^[0-9]+$/.test(v)) return false;
  return BigInt(v) <= BigInt(Date.now()) * 1000000n;
}

// unary adapts an async handler to grpc-js's callback style; anything not
// a WireError is an internal error (sdk: a plain error), with its text.
function unary(fn) {
  return (call, callback) => {
    if (givenUp(call)) {
      callback(new WireError(status.DEADLINE_EXCEEDED, 'koi gave up on this call before it began'));
      return;
    }
    fn(call.request).then(
      (resp) => callback(null, resp),
      (err) => {
        if (!(err instanceof WireError)) {
          log.error('call failed', { error: String(err && err.stack ? err.stack : err) });
          err = new WireError(status.UNKNOWN, String(err && err.message ? err.message : err));
        }
        callback(err);
      });
  };
}

class Backend {
  constructor() {
    this.users = null; // a UserFile once configured
    this.configuring = false;
  }

  // state is the configured user file, or the error sdk's server gives
  // before Configure.
  state() {
    if (!this.users) throw new WireError(status.UNAVAILABLE, 'plugin is not configured yet');
    return this.users;
  }

  async configure(req) {
    if (this.users || this.configuring) {
      throw new WireError(status.FAILED_PRECONDITION, 'plugin is already configured');
    }
    this.configuring = true;
    try {
      const { file, users } = parseConfig(req.config || Buffer.alloc(0));
      this.users = new UserFile(file, users);
      log.info('node-auth backend ready', { file, users: users.size });
      return { capabilities: CAPABILITIES };
    } catch (e) {
      if (e instanceof ConfigError) throw new WireError(status.INVALID_ARGUMENT, e.message);
      throw e;
    } finally {
      this.configuring = false;
    }
  }

  async ping() {
    this.state();
    return {};
  }

  // lookup checks host and user as koi's Go backends do, and returns the
  // current users with the user's parsed hash (undefined if unknown).
  async lookup({ host, user }) {
    const file = this.state();
    if (!host) throw invalid('empty host');
    if (!user) throw invalid('empty user');
    const users = await file.current();
    return { users, hash: users.get(user) };
  }

  async userExists(req) {
    return { value: (await this.lookup(req)).hash !== undefined };
  }

  async checkPassword(req) {
    const { users, hash } = await this.lookup(req);
    if (hash === undefined) {
      await scrypt.verify(decoy(users), req.password);
      return { value: false };
    }
    return { value: await scrypt.verify(hash, req.password) };
  }

  async listUsers({ host }) {
    const file = this.state();
    if (!host) throw invalid('empty host');
    // Sorted by code point, as Go's sort.Strings orders them.
    const names = [...(await file.current()).keys()];
    names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return { users: names };
  }

  async readOnly() {
    this.state();
    throw new WireError(status.PERMISSION_DENIED, 'backend is read-only: node-auth accounts live in its user file');
  }

  async noSCRAM() {
    this.state();
    throw new WireError(status.UNIMPLEMENTED, 'backend does not serve SCRAM credentials');
  }

  // register adds koi's services to server. Roster, Offline, VCard,
  // Private and Archive are not registered: grpc-js answers them with
  // UNIMPLEMENTED, which koi reads as errors.ErrUnsupported.
  register(server, pkg) {
    const v1 = pkg.koi.backend.v1;
    server.addService(v1.Plugin.service, {
      Configure: unary((r) => this.configure(r)),
      Ping: unary(() => this.ping()),
    });
    server.addService(v1.Auth.service, {
      UserExists: unary((r) => this.userExists(r)),
      CheckPassword: unary((r) => this.checkPassword(r)),
      SCRAMCredentials: unary(() => this.noSCRAM()),
    });
    server.addService(v1.AuthAdmin.service, {
      CreateUser: unary(() => this.readOnly()),
      SetPassword: unary(() => this.readOnly()),
      DeleteUser: unary(() => this.readOnly()),
      ListUsers: unary((r) => this.listUsers(r)),
    });
  }
}

module.exports = { Backend, CAPABILITIES_JSON };
