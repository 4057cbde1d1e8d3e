// The Content-Type a streamed file is served with, from its extension. Private to src/http/.
//
// Security: a torrent is untrusted, and everything the stream handler serves shares one origin
// (http://127.0.0.1:PORT), later possibly with the daemon's RPC. So nothing from a torrent may be rendered as a
// document that runs script there: HTML, XHTML, SVG, XML and JavaScript are served as text/plain (shown as
// source), anything unknown as application/octet-stream (downloaded), and the handler adds
// `X-Content-Type-Options: nosniff` (no sniffing text/plain into HTML) to every file and a `sandbox` CSP to
// every file that is not audio, video, an image or a PDF.

const TYPES: Record<string, string> = {
  // video
  mp4: "video/mp4",
  m4v: "video/mp4",
  mkv: "video/x-matroska",
  webm: "video/webm",
  avi: "video/x-msvideo",
  mov: "video/quicktime",
  ts: "video/mp2t",
  mpg: "video/mpeg",
  mpeg: "video/mpeg",
  ogv: "video/ogg",
  // audio
  mp3: "audio/mpeg",
  flac: "audio/flac",
  ogg: "audio/ogg",
  oga: "audio/ogg",
  opus: "audio/ogg",
  m4a: "audio/mp4",
  wav: "audio/wav",
  aac: "audio/aac",
  // subtitles
  srt: "application/x-subrip",
  vtt: "text/vtt; charset=utf-8",
  // images
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  png: "image/png",
  gif: "image/gif",
  webp: "image/webp",
  // documents and archives
  pdf: "application/pdf",
  txt: "text/plain; charset=utf-8",
  nfo: "text/plain; charset=utf-8",
  md: "text/plain; charset=utf-8",
  json: "application/json",
  zip: "application/zip",
  iso: "application/x-iso9660-image",
  // active content: shown as source, never rendered on our origin
  html: "text/plain; charset=utf-8",
  htm: "text/plain; charset=utf-8",
  xhtml: "text/plain; charset=utf-8",
  shtml: "text/plain; charset=utf-8",
  svg: "text/plain; charset=utf-8",
  xml: "text/plain; charset=utf-8",
  js: "text/plain; charset=utf-8",
  mjs: "text/plain; charset=utf-8",
};

/** What an unknown extension is served as: a download. */
export const DEFAULT_TYPE = "application/octet-stream";

/**
 * The `Content-Type` for a file name, from its extension (case-insensitive).
 *
 * @param name The file name (last path component).
 * @returns A MIME type, `application/octet-stream` when the extension is unknown.
 */
export function contentTypeFor(name: string): string {
  const dot = name.lastIndexOf(".");
  if (dot < 0) return DEFAULT_TYPE;
  return Object.hasOwn(TYPES, name.slice(dot + 1).toLowerCase())
    ? TYPES[name.slice(dot + 1).toLowerCase()]
    : DEFAULT_TYPE;
}

/** Whether a media player should get this file in a playlist (audio or video). */
export function isMedia(contentType: string): boolean {
  return contentType.startsWith("video/") || contentType.startsWith("audio/");
}
