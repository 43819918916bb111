/**
 * Tiny but real media for the demo library, made from bytes in code (no image tools needed):
 * a baseline JPEG whose 8×8 blocks are flat colours (only DC coefficients), and an MP4 with
 * one H.264 track of I_PCM macroblocks (raw samples, so no encoder is needed) that browsers play.
 */

export type Rgb = [number, number, number];
/** Colour of the point (u, v) of the picture, both in [0, 1); t is the frame number of a video. */
export type Paint = (u: number, v: number, t: number) => Rgb;

const clamp = (value: number, low: number, high: number) => Math.min(high, Math.max(low, Math.round(value)));

/** Full-range BT.601, as JFIF uses. */
function ycbcrFull([r, g, b]: Rgb): [number, number, number] {
  return [
    0.299 * r + 0.587 * g + 0.114 * b,
    128 - 0.168736 * r - 0.331264 * g + 0.5 * b,
    128 + 0.5 * r - 0.418688 * g - 0.081312 * b,
  ];
}

/** Limited-range BT.601, as H.264 video uses by default. */
function ycbcrVideo([r, g, b]: Rgb): [number, number, number] {
  return [
    clamp(16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255, 16, 235),
    clamp(128 + (-37.797 * r - 74.203 * g + 112 * b) / 255, 16, 240),
    clamp(128 + (112 * r - 93.786 * g - 18.214 * b) / 255, 16, 240),
  ];
}

class BitWriter {
  private bytes: number[] = [];
  private current = 0;
  private count = 0;

  constructor(private readonly onByte?: (byte: number, out: number[]) => void) {}

  bits(value: number, length: number): this {
    for (let i = length - 1; i >= 0; i--) {
      this.current = (this.current << 1) | ((value >>> i) & 1);
      if (++this.count === 8) this.flushByte();
    }
    return this;
  }

  /** Exp-Golomb codes of H.264. */
  ue(value: number): this {
    const length = Math.floor(Math.log2(value + 1));
    return this.bits(0, length).bits(value + 1, length + 1);
  }

  se(value: number): this {
    return this.ue(value <= 0 ? -2 * value : 2 * value - 1);
  }

  get aligned(): boolean {
    return this.count === 0;
  }

  /** Pads the last byte with `fill` bits. */
  finish(fill: 0 | 1): Buffer {
    while (this.count !== 0) this.bits(fill, 1);
    return Buffer.from(this.bytes);
  }

  private flushByte() {
    if (this.onByte) this.onByte(this.current, this.bytes);
    else this.bytes.push(this.current);
    this.current = 0;
    this.count = 0;
  }
}

function segment(marker: number, payload: number[] | Buffer): Buffer {
  const body = Buffer.from(payload);
  const head = Buffer.alloc(4);
  head.writeUInt16BE(0xff00 | marker, 0);
  head.writeUInt16BE(body.length + 2, 2);
  return Buffer.concat([head, body]);
}

/** Canonical Huffman codes from the BITS/HUFFVAL lists of a DHT segment. */
function huffmanCodes(bits: number[], values: number[]): Map<number, { code: number; length: number }> {
  const codes = new Map<number, { code: number; length: number }>();
  let code = 0;
  let k = 0;
  for (let length = 1; length <= 16; length++) {
    for (let i = 0; i < bits[length - 1]; i++) codes.set(values[k++], { code: code++, length });
    code <<= 1;
  }
  return codes;
}

// The standard luminance DC table (ITU T.81 Annex K.3), used for all three components.
const DC_BITS = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
const DC_VALUES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
// Every block is flat, so the AC table needs one symbol only: end-of-block.
const AC_BITS = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
const AC_VALUES = [0x00];
// With every quantizer 8, a flat block of sample s has the quantized DC value s - 128 exactly.
const QUANT = 8;

/**
 * A baseline JPEG (JFIF, 4:4:4) of width×height pixels; each 8×8 block is painted with the
 * colour at its centre, so the picture is a soft mosaic.
 */
export function mosaicJpeg(width: number, height: number, paint: Paint): Buffer {
  const blocksX = Math.ceil(width / 8);
  const blocksY = Math.ceil(height / 8);
  const dcCodes = huffmanCodes(DC_BITS, DC_VALUES);
  const eob = huffmanCodes(AC_BITS, AC_VALUES).get(0)!;
  // 0xFF in entropy-coded data is followed by a stuffed 0x00.
  const writer = new BitWriter((byte, out) => {
    out.push(byte);
    if (byte === 0xff) out.push(0x00);
  });
  const predictions = [0, 0, 0];
  for (let by = 0; by < blocksY; by++) {
    for (let bx = 0; bx < blocksX; bx++) {
      const samples = ycbcrFull(paint((bx + 0.5) / blocksX, (by + 0.5) / blocksY, 0));
      for (let c = 0; c < 3; c++) {
        const dc = clamp(samples[c], 0, 255) - 128;
        const diff = dc - predictions[c];
        predictions[c] = dc;
        const category = diff === 0 ? 0 : Math.floor(Math.log2(Math.abs(diff))) + 1;
        const { code, length } = dcCodes.get(category)!;
        writer.bits(code, length);
        // Negative differences are written as their ones' complement.
        if (category) writer.bits(diff > 0 ? diff : diff + (1 << category) - 1, category);
        writer.bits(eob.code, eob.length);
      }
    }
  }
  const scan = writer.finish(1);
  const size = (n: number) => [(n >> 8) & 0xff, n & 0xff];
  return Buffer.concat([
    Buffer.from([0xff, 0xd8]),
    segment(0xe0, [...Buffer.from('JFIF\0', 'latin1'), 1, 1, 0, 0, 1, 0, 1, 0, 0]),
    segment(0xdb, [0x00, ...new Array(64).fill(QUANT)]),
    segment(0xc0, [8, ...size(height), ...size(width), 3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0]),
    segment(0xc4, [0x00, ...DC_BITS, ...DC_VALUES, 0x10, ...AC_BITS, ...AC_VALUES]),
    segment(0xda, [3, 1, 0x00, 2, 0x00, 3, 0x00, 0, 63, 0]),
    scan,
    Buffer.from([0xff, 0xd9]),
  ]);
}

/** A NAL unit's payload with emulation prevention bytes (00 00 0x → 00 00 03 0x). */
function nal(type: number, refIdc: number, rbsp: Buffer): Buffer {
  const out = [(refIdc << 5) | type];
  let zeros = 0;
  for (const byte of rbsp) {
    if (zeros >= 2 && byte <= 3) {
      out.push(3);
      zeros = 0;
    }
    out.push(byte);
    zeros = byte === 0 ? zeros + 1 : 0;
  }
  return Buffer.from(out);
}

const PROFILE_BASELINE = 66;
const CONSTRAINTS = 0xc0; // constraint_set0 and set1: decodable by baseline and main decoders
const LEVEL = 30;

function sps(mbsWide: number, mbsHigh: number): Buffer {
  const w = new BitWriter()
    .bits(PROFILE_BASELINE, 8)
    .bits(CONSTRAINTS, 8)
    .bits(LEVEL, 8)
    .ue(0) // seq_parameter_set_id
    .ue(0) // log2_max_frame_num_minus4
    .ue(2) // pic_order_cnt_type: output order = decoding order
    .ue(1) // max_num_ref_frames
    .bits(0, 1) // gaps_in_frame_num_value_allowed_flag
    .ue(mbsWide - 1)
    .ue(mbsHigh - 1)
    .bits(1, 1) // frame_mbs_only_flag
    .bits(1, 1) // direct_8x8_inference_flag
    .bits(0, 1) // frame_cropping_flag
    .bits(0, 1) // vui_parameters_present_flag
    .bits(1, 1); // rbsp_stop_one_bit
  return nal(7, 3, w.finish(0));
}

function pps(): Buffer {
  const w = new BitWriter()
    .ue(0) // pic_parameter_set_id
    .ue(0) // seq_parameter_set_id
    .bits(0, 1) // entropy_coding_mode_flag: CAVLC
    .bits(0, 1) // bottom_field_pic_order_in_frame_present_flag
    .ue(0) // num_slice_groups_minus1
    .ue(0) // num_ref_idx_l0_default_active_minus1
    .ue(0) // num_ref_idx_l1_default_active_minus1
    .bits(0, 1) // weighted_pred_flag
    .bits(0, 2) // weighted_bipred_idc
    .se(0) // pic_init_qp_minus26
    .se(0) // pic_init_qs_minus26
    .se(0) // chroma_qp_index_offset
    .bits(1, 1) // deblocking_filter_control_present_flag
    .bits(0, 1) // constrained_intra_pred_flag
    .bits(0, 1) // redundant_pic_cnt_present_flag
    .bits(1, 1);
  return nal(8, 3, w.finish(0));
}

/** One IDR picture whose macroblocks are all I_PCM: the samples are written as they are. */
function pcmPicture(mbsWide: number, mbsHigh: number, frame: number, paint: Paint): Buffer {
  const w = new BitWriter()
    .ue(0) // first_mb_in_slice
    .ue(7) // slice_type: I, and every slice of the picture is I
    .ue(0) // pic_parameter_set_id
    .bits(0, 4) // frame_num
    .ue(frame % 2) // idr_pic_id: consecutive IDR pictures must differ
    .bits(0, 1) // no_output_of_prior_pics_flag
    .bits(0, 1) // long_term_reference_flag
    .se(0) // slice_qp_delta
    .ue(1); // disable_deblocking_filter_idc
  const width = mbsWide * 16;
  const height = mbsHigh * 16;
  for (let my = 0; my < mbsHigh; my++) {
    for (let mx = 0; mx < mbsWide; mx++) {
      w.ue(25); // mb_type I_PCM
      while (!w.aligned) w.bits(0, 1);
      const at = (x: number, y: number) => ycbcrVideo(paint(x / width, y / height, frame));
      for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) w.bits(at(mx * 16 + x, my * 16 + y)[0], 8);
      for (const c of [1, 2]) {
        for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) w.bits(at(mx * 16 + x * 2 + 0.5, my * 16 + y * 2 + 0.5)[c], 8);
      }
    }
  }
  w.bits(1, 1);
  return nal(5, 3, w.finish(0));
}

function box(type: string, ...parts: Array<Buffer | number[]>): Buffer {
  const body = Buffer.concat(parts.map((p) => Buffer.from(p)));
  const head = Buffer.alloc(8);
  head.writeUInt32BE(body.length + 8, 0);
  head.write(type, 4, 'latin1');
  return Buffer.concat([head, body]);
}

function u32(...values: number[]): Buffer {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeUInt32BE(v >>> 0, i * 4));
  return b;
}

function u16(...values: number[]): Buffer {
  const b = Buffer.alloc(values.length * 2);
  values.forEach((v, i) => b.writeUInt16BE(v & 0xffff, i * 2));
  return b;
}

const MATRIX = u32(0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000);
const FULL_BOX = (flags = 0) => u32(flags);

/**
 * An MP4 (ISO BMFF, moov before mdat) with one H.264 video track of `frames` pictures,
 * one per second. Width and height are rounded up to whole macroblocks (16 pixels).
 */
export function pcmMp4(width: number, height: number, frames: number, paint: Paint): Buffer {
  const mbsWide = Math.ceil(width / 16);
  const mbsHigh = Math.ceil(height / 16);
  const w = mbsWide * 16;
  const h = mbsHigh * 16;
  const spsNal = sps(mbsWide, mbsHigh);
  const ppsNal = pps();
  // Samples are length-prefixed NAL units (avcC lengthSizeMinusOne = 3).
  const samples = Array.from({ length: frames }, (_, i) => {
    const picture = pcmPicture(mbsWide, mbsHigh, i, paint);
    return Buffer.concat([u32(picture.length), picture]);
  });
  const timescale = 1000;
  const duration = frames * timescale;

  const avcC = box('avcC', [1, PROFILE_BASELINE, CONSTRAINTS, LEVEL, 0xff, 0xe1], u16(spsNal.length), spsNal, [1], u16(ppsNal.length), ppsNal);
  const compressorName = Buffer.alloc(32);
  const avc1 = box(
    'avc1',
    Buffer.alloc(6), u16(1), // reserved, data_reference_index
    Buffer.alloc(16), u16(w, h), u32(0x480000, 0x480000, 0), u16(1), compressorName, u16(0x18, 0xffff),
    avcC,
  );
  const moovFor = (mdatOffset: number) =>
    box(
      'moov',
      box('mvhd', FULL_BOX(), u32(0, 0, timescale, duration, 0x10000), u16(0x100), Buffer.alloc(10), MATRIX, Buffer.alloc(24), u32(2)),
      box(
        'trak',
        box('tkhd', FULL_BOX(3), u32(0, 0, 1, 0, duration, 0, 0), u16(0, 0, 0, 0), MATRIX, u32(w << 16, h << 16)),
        box(
          'mdia',
          box('mdhd', FULL_BOX(), u32(0, 0, timescale, duration), u16(0x55c4, 0)),
          box('hdlr', FULL_BOX(), u32(0), Buffer.from('vide', 'latin1'), u32(0, 0, 0), Buffer.from('VideoHandler\0', 'latin1')),
          box(
            'minf',
            box('vmhd', FULL_BOX(1), u16(0, 0, 0, 0)),
            box('dinf', box('dref', FULL_BOX(), u32(1), box('url ', FULL_BOX(1)))),
            box(
              'stbl',
              box('stsd', FULL_BOX(), u32(1), avc1),
              box('stts', FULL_BOX(), u32(1, frames, timescale)),
              box('stsc', FULL_BOX(), u32(1, 1, frames, 1)),
              box('stsz', FULL_BOX(), u32(0, frames, ...samples.map((s) => s.length))),
              box('stco', FULL_BOX(), u32(1, mdatOffset)),
            ),
          ),
        ),
      ),
    );
  const ftyp = box('ftyp', Buffer.from('isom', 'latin1'), u32(0x200), Buffer.from('isomiso2avc1mp41', 'latin1'));
  const moovLength = moovFor(0).length;
  const moov = moovFor(ftyp.length + moovLength + 8);
  return Buffer.concat([ftyp, moov, box('mdat', ...samples)]);
}

/** A few palettes, so the demo grid is not one colour. */
export const DEMO_PALETTES: Rgb[][] = [
  [[244, 114, 82], [250, 204, 21]],
  [[56, 189, 248], [30, 64, 175]],
  [[74, 222, 128], [21, 128, 61]],
  [[232, 121, 249], [124, 58, 237]],
  [[251, 146, 60], [190, 18, 60]],
  [[148, 163, 184], [15, 23, 42]],
];

/** A diagonal gradient between the palette's two colours, shifted per video frame. */
export function gradient(palette: Rgb[]): Paint {
  const [a, b] = palette;
  return (u, v, t) => {
    const k = ((u + v) / 2 + t * 0.25) % 1;
    return [0, 1, 2].map((i) => a[i] + (b[i] - a[i]) * k) as Rgb;
  };
}
