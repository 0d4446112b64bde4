// Audio helpers for the audio view: recorded sound as a 16-bit PCM WAV file, and a microphone
// recorder (getUserMedia + MediaRecorder, decoded with Web Audio).

import {clamp} from "./util.js";

/** Mono float samples in [-1, 1] as the bytes of a 16-bit PCM WAV file at `rate` Hz. */
export function encodeWav(samples, rate) {
  const buffer = new ArrayBuffer(44 + 2 * samples.length);
  const view = new DataView(buffer);
  const text = (offset, s) => [...s].forEach((c, i) => view.setUint8(offset + i, c.charCodeAt(0)));
  text(0, "RIFF");
  view.setUint32(4, 36 + 2 * samples.length, true);
  text(8, "WAVE");
  text(12, "fmt ");
  view.setUint32(16, 16, true); // fmt chunk size
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, rate, true);
  view.setUint32(28, 2 * rate, true); // bytes per second
  view.setUint16(32, 2, true); // bytes per frame
  view.setUint16(34, 16, true); // bits per sample
  text(36, "data");
  view.setUint32(40, 2 * samples.length, true);
  samples.forEach((v, i) => {
    view.setInt16(44 + 2 * i, Math.round(clamp(v, -1, 1) * 32767), true);
  });
  return new Uint8Array(buffer);
}

/** The channels of a decoded AudioBuffer averaged to one. */
export function mixdown(audio) {
  const out = new Float32Array(audio.length);
  for (let c = 0; c < audio.numberOfChannels; c++) {
    audio.getChannelData(c).forEach((v, i) => (out[i] += v / audio.numberOfChannels));
  }
  return out;
}

/** What to tell the user when the microphone cannot be used. */
export function microphoneProblem(error) {
  switch (error.name) {
    case "NotAllowedError":
    case "SecurityError":
      return (
        "Microphone access was refused. Allow the microphone for this page in the browser's " +
        "site settings, then press Record again."
      );
    case "NotFoundError":
      return "No microphone was found.";
    case "NotReadableError":
      return "The microphone could not be started: another program may be using it.";
    default:
      return `The microphone could not be used: ${error.message || error.name}.`;
  }
}

/**
 * Record from the microphone until `stop()` (or `seconds`), then resolve with a WAV File of
 * the recording at `rate` Hz. Rejects with the getUserMedia / decoding error.
 */
export async function recordWav({seconds = 3, rate = 16000} = {}) {
  if (!navigator.mediaDevices?.getUserMedia || !window.MediaRecorder) {
    const message =
      "this browser offers the page no microphone recording (browsers allow it on https:// and " +
      "http://127.0.0.1 pages only)";
    throw Object.assign(new Error(message), {name: "Unsupported"});
  }
  const stream = await navigator.mediaDevices.getUserMedia({audio: true, video: false});
  const recorder = new MediaRecorder(stream);
  const chunks = [];
  recorder.addEventListener("dataavailable", (event) => chunks.push(event.data));
  const done = new Promise((resolve) => recorder.addEventListener("stop", resolve, {once: true}));
  recorder.start();
  const timer = setTimeout(() => recorder.state === "recording" && recorder.stop(), seconds * 1000);
  const finished = (async () => {
    await done;
    clearTimeout(timer);
    stream.getTracks().forEach((track) => track.stop());
    const blob = new Blob(chunks, {type: recorder.mimeType});
    const context = new OfflineAudioContext(1, 1, rate); // decodes and resamples to `rate`
    const audio = await context.decodeAudioData(await blob.arrayBuffer());
    return new File([encodeWav(mixdown(audio), rate)], "recording.wav", {type: "audio/wav"});
  })();
  return {stop: () => recorder.state === "recording" && recorder.stop(), finished};
}
