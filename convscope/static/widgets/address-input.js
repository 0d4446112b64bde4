// The current input written into the address (`input=`), so that a copied link reopens the
// same input: a dataset sample (a test image or a scene, by index) as `s.<dataset>.<index>`,
// pixels (a drawing, a drawn scene, the fitted bytes of an upload or a webcam frame) as
// `p.<source>.<width>x<height>x<depth>.<z|r><base64url bytes>`, deflated (z) where the browser
// offers CompressionStream, else raw (r). A drawing of 84x84 grey bytes takes about 1-2 kB.

const SOURCES = {d: "your drawing", s: "your scene", w: "webcam frame", u: "an uploaded image"};
const MAX_SIDE = 512; // as the server's drawings (server/inputs.py)

class AddressError extends Error {}

/** The one-letter tag of an input's source text ("uploaded digit.png" -> "u"). */
function sourceTag(source = "") {
  if (source.startsWith("uploaded")) return "u";
  const found = Object.entries(SOURCES).find(([, text]) => text === source);
  return found ? found[0] : "u";
}

const toBase64Url = (bytes) => {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
};

function fromBase64Url(text) {
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

/** `bytes` run through a CompressionStream or DecompressionStream of `kind`. */
async function streamed(bytes, Stream) {
  const stream = new Blob([bytes]).stream().pipeThrough(new Stream("deflate-raw"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** The address form of an input reference ({sample} or {pixels}) and its source text. */
export async function encodeInput(input, source = "") {
  if (input.sample) return `s.${input.sample.dataset}.${input.sample.index}`;
  const {width, height, depth, data} = input.pixels;
  const bytes = Uint8Array.from(data);
  const packed =
    typeof CompressionStream === "function"
      ? `z${toBase64Url(await streamed(bytes, CompressionStream))}`
      : `r${toBase64Url(bytes)}`;
  return `p.${sourceTag(source)}.${width}x${height}x${depth}.${packed}`;
}

/** The input an address names: {input, source}; a clear error for a damaged link. */
export async function decodeInput(code) {
  const broken = (why) =>
    new AddressError(`the link's input cannot be read (${why}); choose the input again and copy a fresh link`);
  if (code.startsWith("s.")) {
    const cut = code.lastIndexOf(".");
    const dataset = code.slice(2, cut);
    const index = Number(code.slice(cut + 1));
    if (!dataset || !Number.isInteger(index) || index < 0) throw broken("not a dataset and a sample index");
    return {input: {sample: {dataset, index}}, source: ""};
  }
  const match = /^p\.([dswu])\.(\d+)x(\d+)x([13])\.([zr])([A-Za-z0-9_-]*)$/.exec(code);
  if (!match) throw broken("not a sample or pixels");
  const [, tag, w, hgt, d, packing, text] = match;
  const [width, height, depth] = [Number(w), Number(hgt), Number(d)];
  if (!width || !height || width > MAX_SIDE || height > MAX_SIDE) throw broken(`a ${width}x${height} picture`);
  let bytes;
  try {
    bytes = fromBase64Url(text);
    if (packing === "z") bytes = await streamed(bytes, DecompressionStream);
  } catch {
    throw broken("its pixels are damaged, perhaps cut short");
  }
  if (bytes.length !== width * height * depth) throw broken(`${bytes.length} bytes for ${width}x${height}x${depth}`);
  return {input: {pixels: {width, height, depth, data: Array.from(bytes)}}, source: SOURCES[tag]};
}
