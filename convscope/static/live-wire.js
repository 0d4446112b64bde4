// The live view's wire format (docs/api.md, "The live view"): a frame is "CSF1", width and
// height (uint16 LE), channels (uint8), 3 zero bytes, then the pixels; a result is "CSR1", the
// JSON header's length (uint32 LE), the header, padding to 4 bytes, then each layer's data at
// its offset: uint8 levels over [min, max] for maps, float32 for vectors.

const FRAME_HEADER = 12;

/** RGBA pixels (an ImageData) as a frame message. */
export function frameMessage(image) {
  const buffer = new ArrayBuffer(FRAME_HEADER + image.data.length);
  const view = new DataView(buffer);
  [..."CSF1"].forEach((c, i) => view.setUint8(i, c.charCodeAt(0)));
  view.setUint16(4, image.width, true);
  view.setUint16(6, image.height, true);
  view.setUint8(8, 4);
  new Uint8Array(buffer, FRAME_HEADER).set(image.data);
  return buffer;
}

/** A result message: its header, and each layer as {shape, dtype, min, max, data} by index. */
export function readResult(buffer) {
  const view = new DataView(buffer);
  const length = view.getUint32(4, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 8, length)));
  const base = 8 + length;
  const layers = new Map();
  for (const layer of header.layers) {
    const size = layer.shape.reduce((a, b) => a * b, 1);
    const data =
      layer.dtype === "uint8"
        ? new Uint8Array(buffer, base + layer.offset, size)
        : new Float32Array(buffer.slice(base + layer.offset, base + layer.offset + 4 * size));
    layers.set(layer.index, {...layer, data});
  }
  return {header, layers};
}

/** A uint8 layer's values as floats (min + level / 255 * (max - min)), for bars and strips. */
export function layerValues(layer) {
  if (layer.dtype !== "uint8") return layer.data;
  const step = (layer.max - layer.min) / 255;
  return Float32Array.from(layer.data, (q) => layer.min + q * step);
}
