// Views of what the platform derives per car (issue 16): trips, charging sessions, monthly
// statistics, battery health. Each tab is [slug, title, page].
export const derivedPages = [];
