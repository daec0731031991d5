-- Ids minted inside SQL (join inputs, merged final states) share the JavaScript format:
-- <prefix>_<tag><10 chars of ms time><16 random chars>, Crockford base32, lowercase.
create or replace function {{schema}}.mint_id(p_prefix text) returns text
language plpgsql volatile as $$
declare
  -- rendered from ID_ALPHABET (src/core/ids.ts) by the migrator: the one copy of the alphabet
  alphabet constant text := '{{id_alphabet}}';
  ms bigint := floor(extract(epoch from clock_timestamp()) * 1000);
  out text := '';
begin
  for i in 1..10 loop
    out := substr(alphabet, (ms % 32)::int + 1, 1) || out;
    ms := ms / 32;
  end loop;
  for i in 1..16 loop
    out := out || substr(alphabet, floor(random() * 32)::int + 1, 1);
  end loop;
  return p_prefix || '_{{tag}}' || out;
end $$;
