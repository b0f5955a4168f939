// Texts come from the page (a JSON blob rendered by Django in the active language): no JS catalogue.
const blob = document.getElementById("mc-client");
export const client = blob ? JSON.parse(blob.textContent) : { strings: {}, rules: {} };
export const lang = document.documentElement.lang || "en";

export function t(key, params) {
  let text = client.strings[key] ?? key;
  if (params) text = text.replace(/%\((\w+)\)s/g, (m, name) => (name in params ? String(params[name]) : m));
  return text.replace(/%%/g, "%");
}

export function rule(name) {
  return (client.rules && client.rules[name]) || [];
}
