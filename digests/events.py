"""Named yearly events (festivals, awards, markets) and the listings' localized section names.

Data only, read by `catalog`. One tag kind (`festival`) covers every named event, whatever its
role, so `/subscribe Oscars` works like `/subscribe Cannes`; the role picks the section the event
also files an article under (Festivals, Awards or Markets), so following a section still sees it.
The first name is canonical; aliases cover the four editions' spellings.
"""

from __future__ import annotations

FESTIVALS: dict[str, list[str]] = {
    "Cannes": ["Cannes Film Festival", "Festival de Cannes", "Festival di Cannes", "Croisette"],
    "Berlinale": ["Berlin", "Berlin Film Festival", "Berlino", "Berlín", "Berlinale Talents"],
    "Venice": ["Venezia", "Mostra", "Venise", "Venecia", "Venice Film Festival", "Mostra di Venezia"],
    "Toronto": ["TIFF", "Toronto Film Festival"],
    "San Sebastián": ["San Sebastian", "Donostia", "Saint-Sébastien", "Zinemaldia", "SSIFF"],
    "Locarno": ["Locarno Film Festival"],
    "Karlovy Vary": ["KVIFF", "Karlsbad"],
    "Rotterdam": ["IFFR"],
    "Sundance": [],
    "Annecy": [],
    "Sarajevo": ["SFF"],
    "Black Nights": ["Tallinn Black Nights", "PÖFF", "Tallinn"],
    "Thessaloniki": ["Salonicco", "Salónica"],
    "Göteborg": ["Gothenburg"],
    "Clermont-Ferrand": ["Clermont"],
    "Visions du Réel": [],
    "CPH:DOX": ["CPH DOX", "CPHDOX"],
    "IDFA": ["Amsterdam"],
    "Sitges": [],
    "Ostend": ["Ostende"],
    "Cottbus": [],
    "Les Arcs": [],
    "Red Sea": ["Mar Rosso", "Mer Rouge"],
    "Málaga": ["Malaga"],
    "Seville": ["Sevilla", "Séville", "Siviglia"],
    "Cinema Jove": [],
    "Angers": ["Premiers Plans"],
    "Zurich": ["Zürich", "ZFF"],
    "Warsaw": ["Varsovie", "Varsovia", "Varsavia"],
    "Transilvania": ["TIFF Cluj", "Cluj"],
    "Trieste": [],
    "Torino": ["Turin", "Turín"],
    "Rome": ["Roma", "Rome Film Fest", "Festa del Cinema di Roma"],
    "Mannheim-Heidelberg": [],
    "Tribeca": [],
    "SXSW": [],
    "Busan": [],
    "Tokyo": [],
    "Marrakech": ["Marrakesh"],
    "El Gouna": [],
    "Cairo": ["Le Caire", "El Cairo", "Il Cairo"],
    "Series Mania": ["Séries Mania"],
    "Lumière": ["Lumiere"],
    "Ljubljana": ["LIFFe"],
    "Motovun": [],
    "Crossing Europe": [],
    "DOK Leipzig": ["Leipzig"],
    "Hot Docs": [],
    "Sheffield": ["Sheffield DocFest"],
    "Edinburgh": [],
    "London": ["BFI London", "Londres", "Londra"],
    "Hamburg": [],
    "Munich": ["Munich Film Festival", "Monaco di Baviera", "Múnich"],
    "Gijón": ["Gijon"],
    "Valladolid": ["Seminci"],
    "Bari": [],
    "Taormina": [],
    "Giffoni": [],
    # Awards: the press writes them like festivals ("Oscars 2010").
    "Oscars": ["Oscar", "Academy Awards", "Óscar", "Óscars"],
    "European Film Awards": ["EFA", "Premios del Cine Europeo", "Prix du cinéma européen", "Premi EFA"],
    "César": ["Césars", "Cesar", "Cesars"],
    "Goya": ["Goyas", "Premios Goya"],
    "David di Donatello": ["David"],
    "BAFTA": ["BAFTAs"],
    "Golden Globes": ["Golden Globe", "Globos de Oro"],
    "LUX Audience Award": ["LUX Award", "LUX Prize", "Prix LUX", "Premio LUX"],
    "Lola": ["Deutscher Filmpreis", "German Film Awards"],
    # Markets and industry programmes.
    "Marché du Film": ["Cannes Market", "Marche du Film"],
    "EFM": ["European Film Market"],
    "Producers on the Move": [],
    "MIPCOM": [],
    "MIA": ["MIA Market"],
    "Ventana Sur": [],
    "Cinekid": [],
}

AWARDS = frozenset(
    {"Oscars", "European Film Awards", "César", "Goya", "David di Donatello", "BAFTA", "Golden Globes",
     "LUX Audience Award", "Lola"}
)
MARKETS = frozenset({"Marché du Film", "EFM", "Producers on the Move", "MIPCOM", "MIA", "Ventana Sur"})

# Section names of the French, Spanish and Italian editions, by canonical section.
LOCALIZED_SECTIONS: dict[str, list[str]] = {
    "Production": ["Producción", "Produzione", "Tournage", "Rodaje", "Riprese"],
    "Funding": ["Financement", "Financiación", "Financiacion", "Finanziamenti", "Finanziamento"],
    "Distribution": ["Distribución", "Distribuzione", "Sorties", "Estrenos", "Uscite"],
    "Festivals": ["Festivales", "Festivali"],
    "Reviews": ["Critiques", "Crítica", "Críticas", "Recensione", "Recensioni"],
    "Interviews": ["Entretien", "Entretiens", "Entrevista", "Entrevistas", "Intervista", "Interviste"],
    "Industry": ["Industrie", "Industria"],
    "Box Office": ["Taquilla", "Box-office"],
    "Markets": ["Marché", "Marchés", "Mercado", "Mercados", "Mercato", "Mercati"],
    "Awards": ["Prix", "Premios", "Premio", "Premi", "Récompenses"],
    "Training": ["Formation", "Formación", "Formazione"],
    "Legislation": ["Législation", "Legislación", "Legislazione"],
    "Sales": ["Ventes", "Ventas", "Vendite"],
    "Series": ["Séries", "Serie", "Séries TV"],
    "Documentary": ["Documentaire", "Documentaires", "Documental", "Documentales", "Documentario"],
    "Animation": ["Animación", "Animazione"],
    "Co-production": ["Coproduction", "Coproducción", "Coproduzione", "Coproduzioni"],
    "Exhibition": ["Exploitation", "Salles", "Exhibición", "Esercizio"],
    "Short Films": ["Courts métrages", "Court métrage", "Cortometrajes", "Cortometraggi"],
}

# Where the editions' spelling differs from the ISO translation pycountry ships (ISO: "Tchéquie",
# "Corée, République de", "Federación Rusa"…), the site's spelling, by canonical name.
LOCALIZED_COUNTRY_EXTRAS: dict[str, list[str]] = {
    "Czech Republic": ["République tchèque", "República Checa", "Repubblica Ceca"],
    "South Korea": ["Corée du Sud", "Corea del Sur", "Corea del Sud"],
    "Russia": ["Rusia", "Russie"],
    "UK": ["Grande-Bretagne", "Gran Bretaña", "Gran Bretagna", "Angleterre", "Inglaterra", "Inghilterra"],
    "USA": ["États-Unis d'Amérique"],
    "Netherlands": ["Hollande", "Holanda", "Olanda"],
    "North Macedonia": ["Macédoine", "Macedonia del Norte", "Macedonia del Nord", "Macédoine du Nord"],
    "Bosnia and Herzegovina": ["Bosnie", "Bosnia-Erzegovina", "Bosnia Erzegovina", "Bosnia y Herzegovina"],
    "Kosovo": [],
    "Palestine": ["Palestina"],
    "Iran": ["Irán"],
    "Moldova": ["Moldavie", "Moldavia"],
    "Vietnam": [],
    "Taiwan": ["Taïwan", "Taiwán"],
    "DR Congo": ["RD Congo", "RDC", "République démocratique du Congo"],
}
