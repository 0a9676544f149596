// The playground's request as curl, Python and JavaScript, for copying. The token is always the
// placeholder $TOKEN (an environment variable), never the signed-in token itself.

function gatewayBase() {
  // The page is <base>/console/...: the gateway's base URL is the directory above it.
  return new URL("../", location.href).href.replace(/\/$/, "");
}

function shellQuote(text) {
  return `'${text.replace(/'/g, "'\\''")}'`;
}

// A JSON value as a Python literal (JSON's string escapes are Python's too).
function pyLiteral(value, indent = "") {
  if (value === null) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value !== "object") return JSON.stringify(value);
  const inner = `${indent}    `;
  if (Array.isArray(value)) {
    return value.length ? `[\n${value.map(v => inner + pyLiteral(v, inner)).join(",\n")},\n${indent}]` : "[]";
  }
  const entries = Object.entries(value).map(([k, v]) => `${inner}${JSON.stringify(k)}: ${pyLiteral(v, inner)}`);
  return entries.length ? `{\n${entries.join(",\n")},\n${indent}}` : "{}";
}

export function snippets(body) {
  const base = gatewayBase();
  const json = JSON.stringify(body, null, 2);
  const curl = [
    `curl ${shellQuote(`${base}/v1/chat/completions`)} \\`,
    `  -H "Authorization: Bearer $TOKEN" \\`,
    `  -H 'Content-Type: application/json' \\`,
    `  -d ${shellQuote(JSON.stringify(body))}`,
  ].join("\n");
  const python = [
    "import os",
    "from openai import OpenAI",
    "",
    `client = OpenAI(base_url=${JSON.stringify(`${base}/v1`)}, api_key=os.environ["TOKEN"])`,
    `stream = client.chat.completions.create(**${pyLiteral(body)})`,
    "for chunk in stream:",
    "    if chunk.choices:",
    "        print(chunk.choices[0].delta.content or \"\", end=\"\")",
  ].join("\n");
  const javascript = [
    `const response = await fetch(${JSON.stringify(`${base}/v1/chat/completions`)}, {`,
    `  method: "POST",`,
    "  headers: {Authorization: `Bearer ${process.env.TOKEN}`, \"Content-Type\": \"application/json\"},",
    `  body: JSON.stringify(${json.split("\n").join("\n  ")}),`,
    "});",
    "for await (const piece of response.body) process.stdout.write(new TextDecoder().decode(piece));",
  ].join("\n");
  return [["curl", curl], ["Python", python], ["JavaScript", javascript]];
}
