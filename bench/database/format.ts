/** How the database bench writes numbers, in its progress lines and its reports. */

/** 123456.7 -> "123,457". */
export function n(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

/** 0.934 -> "93.4%". */
export function pct(share: number): string {
  return `${(share * 100).toFixed(1)}%`;
}

/** Row counts as people say them: 1000000 -> "1M", 250000 -> "250k". */
export function count(rows: number): string {
  if (rows >= 1_000_000 && rows % 100_000 === 0) return `${rows / 1_000_000}M`;
  if (rows >= 1000 && rows % 100 === 0) return `${rows / 1000}k`;
  return String(rows);
}

/** Bytes as MB with one decimal. */
export function mb(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1);
}

/** Milliseconds with two decimals. */
export function ms(value: number): string {
  return value.toFixed(2);
}
