// A real OpenID provider (the certified npm package oidc-provider) on loopback, for werklabd's
// API tests: clients with the client-credentials grant get JWT access tokens (RFC 9068) for
// werklabd's audience through a resource indicator (RFC 8707).
//
//   node provider.mjs CONFIG.json
//
// CONFIG: {"port": N, "issuer": "http://127.0.0.1:N", "audience": "...", "keys": "PATH",
//          "clients": [{"client_id", "client_secret", "claims": {...}}]}
// keys names a file with a private JWK Set; its first key signs, every key is published.
// SIGHUP reads the key file again and puts a new Provider behind the same port (a key rotation
// without the port ever closing); "reloaded" on stdout says it is done. "listening" on stdout
// says the provider is up.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const claimsOf = new Map(config.clients.map((c) => [c.client_id, c.claims || {}]));

function build() {
  const jwks = JSON.parse(readFileSync(config.keys, 'utf8'));
  const provider = new Provider(config.issuer, {
    clients: config.clients.map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_post',
    })),
    jwks,
    cookies: { keys: ['werklabd-test-cookie-key'] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => config.audience,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource) => {
          if (resource !== config.audience) throw new Error('unknown resource');
          return {
            scope: 'api',
            audience: resource,
            accessTokenTTL: 600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    extraTokenClaims: (ctx, token) => claimsOf.get(token.clientId) || {},
  });
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  return provider;
}

let handler = build().callback();
const server = createServer((req, res) => handler(req, res));
server.listen(config.port, '127.0.0.1', () => console.log('listening'));

process.on('SIGHUP', () => {
  try {
    handler = build().callback();
    console.log('reloaded');
  } catch (err) {
    console.log(`reload failed: ${err.message}`);
  }
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
