-- Bearer tokens. The secret a caller presents is "<id>.<random>"; only the
-- SHA-256 of the random part is kept (it has 256 bits of entropy: no slow hash
-- is needed against guessing), and it is compared in constant time.
CREATE TABLE api_tokens (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name        text NOT NULL,
  secret_hash bytea NOT NULL,
  -- read, submit, runner, admin
  scopes      text[] NOT NULL,
  -- For runner tokens: the cluster slugs it may take work from; empty for all.
  clusters    text[] NOT NULL DEFAULT '{}',
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz,
  revoked_at  timestamptz
);
