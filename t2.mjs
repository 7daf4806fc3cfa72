import postgres from "postgres";
const sql = postgres({ host: "127.0.0.1", user: "postgres", database: "postgres", max: 4 });
const big = Array.from({ length: 50 }, (_, i) => i).join(",");
let n = 0;
const t0 = Date.now();
async function worker() {
  while (Date.now() - t0 < 8000) {
    await sql`select ${"{" + big + "}"}::int[] as a, ${n++}::int as b`;
    await new Promise((r) => setTimeout(r, 1));
  }
}
await Promise.all([worker(), worker()]);
console.log("queries", n);
await sql.end();
