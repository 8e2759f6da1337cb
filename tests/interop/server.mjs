// Authorization server for tests/interop.rs: npm's oidc-provider, in memory,
// on 127.0.0.1 at a port of the OS's choosing. Prints `LISTENING <port>` once
// it accepts connections; logs token endpoint errors (with their real reason:
// every invalid_grant body says only "grant request is invalid") to stderr.
//
// Environment: TOKEN_TTL (access token lifetime in seconds, default 2).
//
// Test-only routes (issue 13, web apps): GET /test/token-requests counts the
// requests the token endpoint received, so tests can assert that a refused
// callback sent none. Issue 23 (DPoP): GET /test/dpop-nonce-challenges counts
// the token endpoint's `use_dpop_nonce` answers.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import Provider, { errors } from 'oidc-provider';

const TTL = Number(process.env.TOKEN_TTL || 2);
const RESOURCE = 'urn:tower-bearer:api';
const SPECIAL_SECRET = 'p@ss w0rd:+/%&=?';

// --- issue 13 (web apps): a second resource server, so that a `resource`
// parameter on the code exchange visibly selects the token's audience.
const REPORTS_RESOURCE = 'urn:tower-bearer:reports';
const resourceAudience = (indicator) => (indicator === REPORTS_RESOURCE ? REPORTS_RESOURCE : RESOURCE);
let tokenRequests = 0;
// --- end issue 13

const clients = [
  {
    client_id: 'cc-basic',
    client_secret: SPECIAL_SECRET,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'api:read api:write',
  },
  {
    client_id: 'cc-post',
    client_secret: SPECIAL_SECRET,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_post',
    scope: 'api:read',
  },
  {
    client_id: 'app',
    client_secret: 'app secret/+=',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: ['http://127.0.0.1:9/callback'],
    token_endpoint_auth_method: 'client_secret_basic',
  },
  {
    // The resource server: introspects access tokens.
    client_id: 'api',
    client_secret: 'api-secret',
    grant_types: [],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  },
];

// ---------------------------------------------------------------------------
// Issue 15: clients that authenticate with a signed JWT (private_key_jwt with
// the public keys of tests/fixtures/keys, client_secret_jwt), for client
// credentials and for the authorization-code flow. Every client assertion's
// jti is remembered by the provider: a reused assertion is refused.
const JWT_CLIENT_JWKS = JSON.parse(
  readFileSync(new URL('../fixtures/keys/public.jwks.json', import.meta.url), 'utf8'),
);
// This client's assertions must name the issuer as their audience (as FAPI
// 2.0, and servers that applied the 2025 audience fix, require); the other
// clients' may name the token endpoint URL or the issuer.
const ISSUER_AUDIENCE_CLIENT = 'cc-private-key-jwt-issuer-aud';
clients.push(
  {
    client_id: 'cc-private-key-jwt',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'private_key_jwt',
    jwks: JWT_CLIENT_JWKS,
    scope: 'api:read api:write',
  },
  {
    client_id: ISSUER_AUDIENCE_CLIENT,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'private_key_jwt',
    jwks: JWT_CLIENT_JWKS,
    scope: 'api:read',
  },
  {
    client_id: 'cc-client-secret-jwt',
    client_secret: 'client-secret-jwt: at least 32 bytes, HS256',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_jwt',
    scope: 'api:read',
  },
  {
    client_id: 'app-private-key-jwt',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: ['http://127.0.0.1:9/callback'],
    token_endpoint_auth_method: 'private_key_jwt',
    jwks: JWT_CLIENT_JWKS,
  },
);
async function assertJwtClientAuthAudience(ctx, claims) {
  if (ctx.oidc.client.clientId === ISSUER_AUDIENCE_CLIENT && claims.aud !== ctx.oidc.issuer) {
    throw new errors.InvalidClientAuth('audience (aud) must equal the issuer identifier');
  }
}
// End of issue 15's clients.
// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------
// Issue 23: DPoP (RFC 9449). Proofs at the token endpoint must carry the
// server's nonce (`use_dpop_nonce` otherwise). These clients' access tokens
// must be DPoP-bound (`dpop_bound_access_tokens`): a token request without a
// proof is refused. The public client's refresh tokens are bound to the key
// too (RFC 9449 §5).
clients.push(
  {
    client_id: 'cc-dpop',
    client_secret: 'cc-dpop secret',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'api:read api:write',
    dpop_bound_access_tokens: true,
  },
  {
    client_id: 'app-dpop-public',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: ['http://127.0.0.1:9/callback'],
    token_endpoint_auth_method: 'none',
    dpop_bound_access_tokens: true,
  },
);
let dpopNonceChallenges = 0;
// End of issue 23's clients.
// ---------------------------------------------------------------------------

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients,
    scopes: ['openid', 'offline_access', 'api:read', 'api:write'],
    cookies: { keys: ['tower-bearer-interop-cookie-key'] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      // Issue 23: nonces required in every DPoP proof at the token endpoint
      // (requests without a proof are not affected). Nonces are derived
      // from the secret and the minute, and stay valid for a few minutes.
      dPoP: { enabled: true, nonceSecret: randomBytes(32), requireNonce: () => true },
      introspection: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, indicator) => ({
          scope: 'api:read api:write',
          audience: resourceAudience(indicator),
          accessTokenTTL: TTL,
          accessTokenFormat: 'opaque',
        }),
      },
    },
    ttl: {
      AccessToken: TTL,
      ClientCredentials: TTL,
      AuthorizationCode: 60,
      RefreshToken: 3600,
      Grant: 3600,
      Interaction: 600,
      Session: 3600,
      IdToken: 3600,
    },
    pkce: { required: () => true },
    // Issue 23: every algorithm DpopKey signs with (the default is ES256 and EdDSA).
    enabledJWA: { dPoPSigningAlgValues: ['ES256', 'RS256', 'PS256', 'EdDSA', 'Ed25519'] },
    // Refresh tokens for every client allowed the grant, without offline_access
    // (which OpenID Connect only honours with prompt=consent).
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: true,
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    findAccount: async (ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
    assertJwtClientAuthClaimsAndHeader: assertJwtClientAuthAudience, // issue 15
  });

  // --- issue 13 (web apps): count token endpoint requests; report the count.
  provider.use(async (ctx, next) => {
    if (ctx.method === 'POST' && ctx.path === '/token') {
      tokenRequests += 1;
    }
    if (ctx.method === 'GET' && ctx.path === '/test/token-requests') {
      ctx.body = { count: tokenRequests };
      return;
    }
    await next();
  });
  // --- end issue 13

  // --- issue 23 (DPoP): count the token endpoint's nonce challenges.
  provider.use(async (ctx, next) => {
    if (ctx.method === 'GET' && ctx.path === '/test/dpop-nonce-challenges') {
      ctx.body = { count: dpopNonceChallenges };
      return;
    }
    await next();
    if (ctx.method === 'POST' && ctx.path === '/token' && ctx.body?.error === 'use_dpop_nonce') {
      dpopNonceChallenges += 1;
    }
  });
  // --- end issue 23

  // No browser: the interaction endpoint logs "alice" in and grants whatever
  // is asked, then sends the user agent back to the provider.
  provider.use(async (ctx, next) => {
    if (!ctx.path.startsWith('/interaction/')) {
      return next();
    }
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const { prompt, params, session } = details;
    let result;
    if (prompt.name === 'login') {
      result = { login: { accountId: 'alice' } };
    } else if (prompt.name === 'consent') {
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = prompt.details;
      if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
      if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(missingResourceScopes || {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      result = { consent: { grantId: await grant.save() } };
    } else {
      throw new errors.InvalidRequest(`unexpected prompt ${prompt.name}`);
    }
    const location = await provider.interactionResult(ctx.req, ctx.res, result, {
      mergeWithLastSubmission: true,
    });
    ctx.status = 303;
    ctx.redirect(location);
  });

  for (const event of ['grant.error', 'server_error', 'authorization.error', 'introspection.error']) {
    provider.on(event, (ctx, err) => {
      console.error(`${event}: ${err.name}: ${err.message}${err.error_detail ? ` (${err.error_detail})` : ''}`);
    });
  }

  server.on('request', provider.callback());
  console.log(`LISTENING ${port}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
