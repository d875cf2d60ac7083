-- Authentication (CHATBOT_AUTH=api_key): each user's API key, stored only as its SHA-256 (hex).
ALTER TABLE users ADD COLUMN api_key_hash text;
CREATE UNIQUE INDEX users_by_api_key ON users(api_key_hash) WHERE api_key_hash IS NOT NULL;
