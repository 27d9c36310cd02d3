// The gateway's conversation records over HTTP (/v1/conversations on its HTTP port, docs/conversations.md):
// list, one conversation with its transcript, its stereo recording, delete. fetch() only: browsers, React
// Native and Node 18+.

import { VoiceError } from "./errors.js";

export class ConversationsClient {
  /**
   * @param {object} options
   * @param {string} options.baseUrl the gateway's HTTP port: http(s)://host:port (the page's own origin in a browser)
   * @param {string} [options.token] the same token as the conversation's: a caller sees only their own
   * @param {Function} [options.fetch] default globalThis.fetch
   */
  constructor({ baseUrl, token, fetch: fetcher } = {}) {
    this.baseUrl = (baseUrl ?? "").replace(/\/$/, "");
    this.token = token;
    this.fetch = fetcher ?? globalThis.fetch.bind(globalThis);
  }

  async #request(path, init = {}) {
    const headers = { ...(init.headers ?? {}) };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    const response = await this.fetch(`${this.baseUrl}/v1/conversations${path}`, { ...init, headers });
    if (response.ok) return response;
    let error = {};
    try {
      error = (await response.json()).error ?? {};
    } catch {
      // not JSON: the status says it
    }
    throw new VoiceError(error.code ?? `HTTP_${response.status}`, error.message ?? response.statusText);
  }

  /** Newest first, without their items: {conversations, next_page_token}. */
  async list({ pageSize = 0, pageToken = "" } = {}) {
    const query = new URLSearchParams();
    if (pageSize) query.set("page_size", String(pageSize));
    if (pageToken) query.set("page_token", pageToken);
    const suffix = query.toString() ? `?${query}` : "";
    return (await this.#request(suffix)).json();
  }

  /** One conversation with its items: the transcript as heard (an interrupted reply's heard_text). */
  async get(conversationId) {
    return (await this.#request(`/${encodeURIComponent(conversationId)}`)).json();
  }

  /** Its stereo recording (user left, agent right) as WAV bytes. */
  async recording(conversationId) {
    return (await this.#request(`/${encodeURIComponent(conversationId)}/recording.wav`)).arrayBuffer();
  }

  async delete(conversationId) {
    await this.#request(`/${encodeURIComponent(conversationId)}`, { method: "DELETE" });
  }
}
