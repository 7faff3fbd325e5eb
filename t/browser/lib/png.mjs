// Enough of PNG (RFC 2083) to check the pixels of a Chromium screenshot:
// 8-bit truecolour, with or without alpha, not interlaced.  Nothing beyond
// node's own zlib.

import zlib from 'node:zlib';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** {width, height, channels, data}: data holds the unfiltered rows. */
export function decodePng(buf) {
    if (buf.length < 8 || !buf.subarray(0, 8).equals(SIGNATURE)) {
        throw new Error('not a PNG');
    }
    let header = null;
    const idat = [];
    for (let at = 8; at + 8 <= buf.length;) {
        const len = buf.readUInt32BE(at);
        const type = buf.toString('latin1', at + 4, at + 8);
        const body = buf.subarray(at + 8, at + 8 + len);
        if (type === 'IHDR') {
            header = {
                width: body.readUInt32BE(0), height: body.readUInt32BE(4),
                depth: body[8], colour: body[9], interlace: body[12],
            };
        } else if (type === 'IDAT') {
            idat.push(body);
        } else if (type === 'IEND') {
            break;
        }
        at += 12 + len;
    }
    if (!header) throw new Error('PNG without IHDR');
    const { width, height, depth, colour, interlace } = header;
    if (depth !== 8 || (colour !== 2 && colour !== 6) || interlace !== 0) {
        throw new Error(`PNG kind not handled: depth ${depth}, colour ${colour}, interlace ${interlace}`);
    }
    const channels = colour === 6 ? 4 : 3;
    const stride = width * channels;
    const raw = zlib.inflateSync(Buffer.concat(idat));
    if (raw.length < height * (stride + 1)) throw new Error('PNG data too short');

    const data = new Uint8Array(height * stride);
    for (let y = 0; y < height; y++) {
        const filter = raw[y * (stride + 1)];
        const src = y * (stride + 1) + 1;
        const row = y * stride;
        const up = row - stride;
        for (let x = 0; x < stride; x++) {
            const a = x >= channels ? data[row + x - channels] : 0;
            const b = y > 0 ? data[up + x] : 0;
            const c = x >= channels && y > 0 ? data[up + x - channels] : 0;
            let v = raw[src + x];
            switch (filter) {
            case 0: break;
            case 1: v += a; break;
            case 2: v += b; break;
            case 3: v += (a + b) >> 1; break;
            case 4: {
                const p = a + b - c;
                const pa = Math.abs(p - a);
                const pb = Math.abs(p - b);
                const pc = Math.abs(p - c);
                v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
                break;
            }
            default: throw new Error(`PNG filter ${filter} in row ${y}`);
            }
            data[row + x] = v & 0xff;
        }
    }
    return { width, height, channels, data };
}

/**
 * How much is on a picture: its distinct colours (counted up to 4096), the
 * most common one (the background) and the share of pixels of another
 * colour.
 */
export function pixelStats({ width, height, channels, data }) {
    const counts = new Map();
    for (let i = 0; i < width * height; i++) {
        const o = i * channels;
        const rgb = (data[o] << 16) | (data[o + 1] << 8) | data[o + 2];
        if (counts.size < 4096 || counts.has(rgb)) counts.set(rgb, (counts.get(rgb) || 0) + 1);
    }
    let background = 0;
    let most = 0;
    for (const [rgb, n] of counts) {
        if (n > most) { most = n; background = rgb; }
    }
    return {
        colours: counts.size,
        background: `#${background.toString(16).padStart(6, '0')}`,
        foreground: 1 - most / (width * height),
    };
}
