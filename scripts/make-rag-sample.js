// Writes data/rag/{corpus.jsonl,queries.jsonl,qrels.tsv}: a license-clean retrieval sample for
// `embedctl rag-overlap`, composed from the templates and word lists below (all written for this
// project). Deterministic: the same script always writes the same bytes, so the output is
// committed and CI never regenerates it. Run: node scripts/make-rag-sample.js
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prng } from './make-test-model.js';

const out = join(dirname(fileURLToPath(import.meta.url)), '..', 'data', 'rag');

// domain: [shared domain words], subjects: { subject: [its own words] }
const DOMAINS = {
  astronomy: [['telescope', 'orbit', 'galaxy', 'observatory', 'planet'], {
    'solar eclipse': ['moon', 'shadow', 'corona', 'totality'], 'black hole': ['gravity', 'horizon', 'mass', 'collapse'],
    'comet tail': ['ice', 'dust', 'nucleus', 'sunlight'], 'exoplanet detection': ['transit', 'wobble', 'starlight', 'dimming'],
    'meteor shower': ['debris', 'atmosphere', 'streak', 'radiant'] }],
  cooking: [['kitchen', 'recipe', 'oven', 'flavor', 'chef'], {
    'sourdough bread': ['starter', 'flour', 'crust', 'fermentation'], 'tomato sauce': ['garlic', 'basil', 'simmer', 'olive'],
    'chocolate cake': ['cocoa', 'butter', 'sugar', 'frosting'], 'vegetable soup': ['carrot', 'celery', 'broth', 'onion'],
    'grilled salmon': ['fish', 'lemon', 'skin', 'marinade'] }],
  gardening: [['garden', 'soil', 'plant', 'seed', 'water'], {
    'rose pruning': ['thorn', 'stem', 'bloom', 'shears'], 'compost pile': ['worms', 'leaves', 'decay', 'manure'],
    'lawn care': ['grass', 'mower', 'weeds', 'fertilizer'], 'potato harvest': ['tuber', 'spade', 'blight', 'storage'],
    'greenhouse heating': ['glass', 'frost', 'seedlings', 'heater'] }],
  finance: [['money', 'bank', 'investment', 'interest', 'market'], {
    'mortgage rate': ['loan', 'house', 'borrower', 'repayment'], 'stock dividend': ['shareholder', 'payout', 'earnings', 'yield'],
    'retirement savings': ['pension', 'contribution', 'age', 'fund'], 'credit card debt': ['balance', 'minimum', 'penalty', 'statement'],
    'currency exchange': ['dollar', 'euro', 'rate', 'travel'] }],
  medicine: [['doctor', 'patient', 'treatment', 'hospital', 'symptom'], {
    'flu vaccine': ['virus', 'injection', 'immunity', 'season'], 'broken wrist': ['bone', 'cast', 'fracture', 'xray'],
    'migraine headache': ['pain', 'light', 'nausea', 'aura'], 'blood pressure': ['heart', 'artery', 'salt', 'hypertension'],
    'type 2 diabetes': ['insulin', 'glucose', 'diet', 'pancreas'] }],
  football: [['team', 'match', 'goal', 'stadium', 'coach'], {
    'penalty kick': ['goalkeeper', 'spot', 'referee', 'foul'], 'transfer window': ['player', 'contract', 'club', 'fee'],
    'offside rule': ['defender', 'line', 'flag', 'pass'], 'world cup final': ['trophy', 'nation', 'fans', 'tournament'],
    'youth academy': ['talent', 'training', 'scouts', 'teenagers'] }],
  music: [['song', 'melody', 'concert', 'instrument', 'rhythm'], {
    'piano practice': ['keys', 'scales', 'fingers', 'pedal'], 'jazz improvisation': ['saxophone', 'chords', 'swing', 'solo'],
    'guitar strings': ['tuning', 'frets', 'acoustic', 'pick'], 'symphony orchestra': ['violin', 'conductor', 'brass', 'score'],
    'drum kit': ['snare', 'cymbal', 'sticks', 'beat'] }],
  programming: [['code', 'software', 'developer', 'program', 'computer'], {
    'memory leak': ['allocation', 'garbage', 'heap', 'pointer'], 'unit testing': ['assertion', 'test', 'bug', 'coverage'],
    'database index': ['query', 'table', 'rows', 'lookup'], 'version control': ['commit', 'branch', 'merge', 'history'],
    'web server': ['request', 'response', 'port', 'http'] }],
  geology: [['rock', 'earth', 'mineral', 'layer', 'erosion'], {
    'volcanic eruption': ['lava', 'magma', 'ash', 'crater'], 'earthquake fault': ['tremor', 'plate', 'seismic', 'rupture'],
    'limestone cave': ['stalactite', 'calcium', 'underground', 'dripping'], 'glacier retreat': ['ice', 'melting', 'valley', 'moraine'],
    'gold deposit': ['vein', 'quartz', 'mining', 'ore'] }],
  sailing: [['boat', 'sea', 'wind', 'harbor', 'crew'], {
    'sail trim': ['sheet', 'mast', 'canvas', 'tack'], 'anchor holding': ['chain', 'seabed', 'mud', 'drag'],
    'storm seamanship': ['waves', 'gale', 'reef', 'survival'], 'knot tying': ['rope', 'bowline', 'loop', 'cleat'],
    'tidal navigation': ['tide', 'current', 'chart', 'moon'] }],
  photography: [['camera', 'photo', 'lens', 'light', 'image'], {
    'long exposure': ['shutter', 'tripod', 'blur', 'night'], 'portrait lighting': ['face', 'shadow', 'softbox', 'model'],
    'film developing': ['darkroom', 'negative', 'chemicals', 'grain'], 'wildlife photography': ['animals', 'telephoto', 'patience', 'safari'],
    'photo editing': ['contrast', 'crop', 'color', 'software'] }],
  chess: [['board', 'pieces', 'move', 'game', 'player'], {
    'chess opening': ['pawn', 'center', 'development', 'gambit'], 'endgame technique': ['king', 'rook', 'promotion', 'draw'],
    'chess tournament': ['rating', 'rounds', 'clock', 'champion'], 'checkmate pattern': ['queen', 'attack', 'mate', 'trap'],
    'chess engine': ['computer', 'evaluation', 'search', 'analysis'] }],
  architecture: [['building', 'design', 'architect', 'structure', 'city'], {
    'gothic cathedral': ['arches', 'stained', 'spire', 'medieval'], 'skyscraper foundation': ['steel', 'concrete', 'height', 'bedrock'],
    'passive house': ['insulation', 'energy', 'ventilation', 'windows'], 'bridge engineering': ['span', 'cable', 'load', 'river'],
    'timber frame': ['wood', 'beams', 'joints', 'carpentry'] }],
  aviation: [['aircraft', 'pilot', 'flight', 'airport', 'runway'], {
    'jet engine': ['turbine', 'thrust', 'fuel', 'compressor'], 'air traffic control': ['radar', 'tower', 'clearance', 'radio'],
    'cabin pressure': ['altitude', 'oxygen', 'ears', 'seal'], 'helicopter rotor': ['blades', 'hover', 'lift', 'tail'],
    'glider soaring': ['thermals', 'silent', 'towplane', 'updraft'] }],
  wine: [['grape', 'vineyard', 'bottle', 'taste', 'cellar'], {
    'red wine tannins': ['oak', 'dry', 'astringent', 'barrel'], 'champagne method': ['bubbles', 'yeast', 'cork', 'sparkling'],
    'wine pairing': ['cheese', 'dinner', 'acidity', 'sommelier'], 'grape harvest': ['pickers', 'ripeness', 'autumn', 'vines'],
    'wine storage': ['temperature', 'humidity', 'aging', 'racks'] }],
  birds: [['bird', 'feathers', 'nest', 'wings', 'species'], {
    'bird migration': ['flock', 'south', 'journey', 'navigation'], 'owl hunting': ['night', 'mouse', 'silent', 'talons'],
    'hummingbird feeding': ['nectar', 'flowers', 'hover', 'tiny'], 'penguin colony': ['antarctic', 'ice', 'chicks', 'huddle'],
    'bird song': ['call', 'morning', 'territory', 'mate'] }],
  fitness: [['exercise', 'muscle', 'workout', 'gym', 'strength'], {
    'marathon training': ['running', 'miles', 'endurance', 'race'], 'yoga stretching': ['pose', 'breath', 'flexibility', 'mat'],
    'weight lifting': ['barbell', 'squat', 'reps', 'bench'], 'cycling cadence': ['bike', 'pedal', 'gears', 'speed'],
    'swimming technique': ['pool', 'stroke', 'lap', 'freestyle'] }],
  history: [['century', 'empire', 'war', 'king', 'ancient'], {
    'roman legion': ['soldiers', 'rome', 'shield', 'conquest'], 'egyptian pyramid': ['pharaoh', 'tomb', 'desert', 'stone'],
    'viking ship': ['norse', 'raid', 'longship', 'oars'], 'medieval castle': ['walls', 'siege', 'moat', 'knight'],
    'silk road trade': ['caravan', 'merchants', 'spices', 'china'] }],
  climate: [['climate', 'weather', 'temperature', 'carbon', 'emissions'], {
    'sea level rise': ['coast', 'flooding', 'ocean', 'islands'], 'heat wave': ['summer', 'drought', 'hot', 'record'],
    'solar panels': ['sun', 'electricity', 'roof', 'renewable'], 'wind turbines': ['blades', 'power', 'offshore', 'generator'],
    'forest fires': ['smoke', 'flames', 'trees', 'firefighters'] }],
  pets: [['pet', 'animal', 'owner', 'vet', 'care'], {
    'puppy training': ['dog', 'leash', 'treats', 'sit'], 'cat litter': ['cat', 'box', 'odor', 'sand'],
    'aquarium fish': ['tank', 'filter', 'water', 'goldfish'], 'rabbit diet': ['hay', 'carrots', 'teeth', 'bunny'],
    'parrot talking': ['words', 'mimic', 'cage', 'voice'] }],
  travel: [['trip', 'hotel', 'tourist', 'luggage', 'destination'], {
    'passport renewal': ['visa', 'border', 'photo', 'embassy'], 'train journey': ['railway', 'ticket', 'station', 'carriage'],
    'camping trip': ['tent', 'fire', 'forest', 'sleeping'], 'beach vacation': ['sand', 'sunscreen', 'swim', 'waves'],
    'mountain hiking': ['trail', 'summit', 'boots', 'altitude'] }],
  cars: [['car', 'engine', 'driver', 'road', 'vehicle'], {
    'tire pressure': ['tyres', 'inflation', 'wheel', 'puncture'], 'electric car battery': ['charging', 'range', 'lithium', 'kilowatt'],
    'oil change': ['lubricant', 'filter', 'mechanic', 'maintenance'], 'brake pads': ['braking', 'disc', 'squeal', 'wear'],
    'winter driving': ['snow', 'ice', 'skid', 'chains'] }],
  art: [['painting', 'artist', 'canvas', 'gallery', 'museum'], {
    'oil painting': ['brush', 'pigment', 'linseed', 'layers'], 'watercolor technique': ['paper', 'wash', 'transparent', 'pigments'],
    'sculpture carving': ['marble', 'chisel', 'statue', 'sculptor'], 'art restoration': ['damage', 'varnish', 'conservation', 'old'],
    'street art': ['graffiti', 'mural', 'wall', 'spray'] }],
  ocean: [['ocean', 'marine', 'fish', 'coral', 'deep'], {
    'coral reef bleaching': ['algae', 'warming', 'reef', 'white'], 'whale migration': ['whales', 'calves', 'feeding', 'songs'],
    'deep sea creatures': ['darkness', 'pressure', 'bioluminescent', 'abyss'], 'shark attack': ['shark', 'surfer', 'bite', 'beach'],
    'plastic pollution': ['waste', 'bottles', 'microplastics', 'cleanup'] }],
  education: [['school', 'student', 'teacher', 'class', 'learning'], {
    'homework help': ['assignment', 'parents', 'evening', 'math'], 'university admission': ['application', 'essay', 'college', 'grades'],
    'language learning': ['vocabulary', 'grammar', 'fluent', 'speaking'], 'exam preparation': ['revision', 'test', 'stress', 'study'],
    'online courses': ['video', 'internet', 'lectures', 'certificate'] }],
};

// Sentence templates: {S} subject, {a}..{d} subject words, {x},{y} domain words.
const TEMPLATES = [
  '{S} depends on {a} and {b}, which every {x} guide explains.',
  'Experts say the {c} matters most for {S}, more than the {y}.',
  'A common question about {S} is how {a} relates to {d}.',
  'When people discuss {S}, they usually mention {b}, {c} and the {x}.',
  'Good {S} starts with understanding {d} and {a}.',
  'The {y} and the {x} both influence {S} through {c}.',
  'Beginners often confuse {a} with {b} when learning about {S}.',
  'Recent reports on {S} focus on {d} and its effect on {c}.',
  'Without enough {b}, {S} rarely works as expected.',
  'Many {x} enthusiasts write about {S}, {a} and {d}.',
];
const FILLER = [
  'This note was written for a local newsletter.', 'Readers asked for a short summary.', 'The details vary from place to place.',
  'More information is available from the usual sources.', 'It was updated last spring.', 'Several people contributed examples.',
  'Opinions differ on some of the finer points.', 'The basics have not changed much in years.', 'Costs depend on the region.',
  'A longer version appeared in an earlier issue.',
];
const QUERY_TEMPLATES = [
  'how does {a} affect {S}', 'what to know about {S} and {b}', '{S} {c} explained', 'why is {d} important for {S}',
  'tips for {S} with {a}', '{S} problems with {b} and {c}',
];

// mulberry32: the same seed gives the same corpus everywhere.
const rnd = prng(20240601);
const pick = (xs) => xs[Math.floor(rnd() * xs.length)];
const shuffle = (xs) => {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
};
const fill = (tpl, S, w, d) =>
  tpl.replace('{S}', S).replace('{a}', w[0]).replace('{b}', w[1]).replace('{c}', w[2]).replace('{d}', w[3]).replace('{x}', pick(d)).replace('{y}', pick(d));
const cap = (s) => s[0].toUpperCase() + s.slice(1);

const PER_SUBJECT = 14; // 25 domains x 5 subjects x 14 = 1,750 on-topic passages
const corpus = [];
const queries = [];
const qrels = [];
let topicNo = 0;
for (const [domain, [dwords, subjects]] of Object.entries(DOMAINS)) {
  const names = Object.keys(subjects);
  for (const S of names) {
    topicNo++;
    const w = subjects[S];
    const ids = [];
    for (let p = 0; p < PER_SUBJECT; p++) {
      const words = shuffle(w);
      const n = 2 + Math.floor(rnd() * 3);
      const sents = shuffle(TEMPLATES).slice(0, n).map((t) => cap(fill(t, S, words, dwords)));
      if (rnd() < 0.5) sents.push(pick(FILLER));
      const id = `d${String(corpus.length + 1).padStart(5, '0')}`;
      corpus.push({ id, title: `${cap(S)} (${domain})`, text: sents.join(' ') });
      ids.push(id);
    }
    // Passages from a sibling subject that mention this one in passing: hard negatives for
    // the sibling, partially relevant (grade 1) here.
    const sibling = names[(names.indexOf(S) + 1) % names.length];
    const sw = subjects[sibling];
    const partial = [];
    for (let p = 0; p < 2; p++) {
      const text = `${cap(fill(pick(TEMPLATES), sibling, shuffle(sw), dwords))} It is sometimes compared with ${S} and ${pick(w)}.`;
      const id = `d${String(corpus.length + 1).padStart(5, '0')}`;
      corpus.push({ id, title: `${cap(sibling)} (${domain})`, text });
      partial.push(id);
    }
    const qid = `q${String(topicNo).padStart(3, '0')}`;
    queries.push({ id: qid, text: fill(pick(QUERY_TEMPLATES), S, shuffle(w), dwords) });
    for (const id of ids) qrels.push([qid, id, 2]);
    for (const id of partial) qrels.push([qid, id, 1]);
  }
}
// Off-topic passages (filler only, or cross-domain mixes): noise every retriever must skip.
const domainNames = Object.keys(DOMAINS);
while (corpus.length < 2100) {
  const d1 = DOMAINS[pick(domainNames)];
  const d2 = DOMAINS[pick(domainNames)];
  const text = `${cap(pick(d1[0]))} and ${pick(d2[0])} are words that appear in many texts. ${pick(FILLER)} ${pick(FILLER)}`;
  corpus.push({ id: `d${String(corpus.length + 1).padStart(5, '0')}`, title: 'Miscellany', text });
}

mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'corpus.jsonl'), corpus.map((c) => JSON.stringify(c)).join('\n') + '\n');
writeFileSync(join(out, 'queries.jsonl'), queries.map((q) => JSON.stringify(q)).join('\n') + '\n');
writeFileSync(join(out, 'qrels.tsv'), 'query-id\tcorpus-id\tscore\n' + qrels.map((r) => r.join('\t')).join('\n') + '\n');
console.log(`data/rag: ${corpus.length} passages, ${queries.length} queries, ${qrels.length} judgements`);
