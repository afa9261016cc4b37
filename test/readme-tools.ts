// Helpers the packages' README tests share: they read a README's fenced blocks and tables so a test
// can run the example and check the tables against the code. Test-only; never published.

/** The body of the first fenced block with the given language in `readme`. */
export function firstBlock(readme: string, lang: string): string {
  const match = new RegExp(`\`\`\`${lang}\\n([\\s\\S]*?)\`\`\``).exec(readme);
  if (match?.[1] === undefined) throw new Error(`README has no \`\`\`${lang} block`);
  return match[1];
}

/**
 * The rows of the first markdown table after `heading` whose header row starts with `| <firstHeader> |`,
 * as arrays of cells with backticks removed.
 */
export function table(readme: string, firstHeader: string, heading = "# "): string[][] {
  const lines = readme.slice(readme.indexOf(heading)).split("\n");
  const header = new RegExp(`^\\|\\s*${firstHeader}\\s*\\|`);
  const start = lines.findIndex((line) => header.test(line));
  if (start < 0) throw new Error(`README has no table "| ${firstHeader} |" after "${heading}"`);
  const rows: string[][] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith("|")) break;
    rows.push(
      line
        .slice(1, -1)
        .split(/(?<!\\)\|/)
        .map((cell) => cell.trim().replaceAll("`", "")),
    );
  }
  return rows;
}
