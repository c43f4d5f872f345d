//! The index maps and neighbour lists that ggml builds at init for the lattice types
//! (`iq2xs_init_impl` for IQ2_XXS / IQ2_XS / IQ2_S / IQ1_S / IQ1_M, `iq3xs_init_impl` for
//! IQ3_XXS / IQ3_S), computed the same way here, lazily and once per process.
//!
//! A lattice point has `D` coordinates, each a level `l` stored as `2l + 1`. Packing the levels
//! (`BITS` bits each) gives a map index; `map[index]` is the grid index of that point, or, for a
//! point off the grid, `-(offset + 1)` where `neighbours[offset]` is a count `n` followed by the
//! `n` grid indices nearest to it: every grid point whose squared distance is among the `nwant`
//! smallest distances, ordered by (distance, grid index).

use std::sync::OnceLock;

use crate::iq_grids::{
    KGRID_1BIT_2048, KGRID_2BIT_1024, KGRID_2BIT_256, KGRID_2BIT_512, KGRID_3BIT_256,
    KGRID_3BIT_512,
};

pub(crate) struct Lattice<const D: usize> {
    /// Grid points, coordinates `2l + 1`.
    pub grid: Vec<[i8; D]>,
    pub map: Vec<i32>,
    pub neighbours: Vec<u16>,
}

impl<const D: usize> Lattice<D> {
    fn build(packed: &[u16], bits: u32, map_size: usize, nwant: usize) -> Lattice<D> {
        let mask = (1usize << bits) - 1;
        let grid: Vec<[i8; D]> = packed
            .iter()
            .map(|&p| {
                let mut pos = [0i8; D];
                for (i, c) in pos.iter_mut().enumerate() {
                    *c = (2 * ((p as usize >> (bits as usize * i)) & mask) + 1) as i8;
                }
                pos
            })
            .collect();
        let mut map = vec![-1i32; map_size];
        for (i, g) in grid.iter().enumerate() {
            let index = Self::index_of(g, bits);
            assert!(index < map_size, "grid point outside the map");
            map[index] = i as i32;
        }
        // Sequential on purpose: this runs inside a `OnceLock` initialiser reached from rayon
        // workers; a parallel iterator here lets a waiting worker steal an outer job that needs
        // the same lattice and block on the `OnceLock` it is itself initialising (a deadlock).
        let lists: Vec<Vec<u16>> = (0..map_size)
            .map(|i| {
                if map[i] >= 0 {
                    return Vec::new();
                }
                let mut pos = [0i32; D];
                for (k, c) in pos.iter_mut().enumerate() {
                    *c = 2 * ((i >> (bits as usize * k)) & mask) as i32 + 1;
                }
                let dist: Vec<i32> = grid
                    .iter()
                    .map(|g| {
                        let mut d2 = 0;
                        for k in 0..D {
                            let d = g[k] as i32 - pos[k];
                            d2 += d * d;
                        }
                        d2
                    })
                    .collect();
                // the nwant smallest distinct distances, ascending
                let mut nearest: Vec<i32> = Vec::with_capacity(nwant + 1);
                for &d in &dist {
                    if nearest.contains(&d) {
                        continue;
                    }
                    let at = nearest.partition_point(|&x| x < d);
                    if at < nwant {
                        nearest.insert(at, d);
                        nearest.truncate(nwant);
                    }
                }
                let mut list = Vec::new();
                for &d in &nearest {
                    list.extend(
                        dist.iter()
                            .enumerate()
                            .filter(|(_, &x)| x == d)
                            .map(|(j, _)| j as u16),
                    );
                }
                list
            })
            .collect();
        let mut neighbours = Vec::new();
        for (i, list) in lists.into_iter().enumerate() {
            if map[i] >= 0 {
                continue;
            }
            map[i] = -(neighbours.len() as i32 + 1);
            neighbours.push(list.len() as u16);
            neighbours.extend(list);
        }
        Lattice {
            grid,
            map,
            neighbours,
        }
    }

    fn index_of(g: &[i8; D], bits: u32) -> usize {
        let mut index = 0usize;
        for (k, &c) in g.iter().enumerate() {
            index |= (((c - 1) / 2) as usize) << (bits as usize * k);
        }
        index
    }

    /// The neighbour list of an off-grid map entry (`map[u] < 0`).
    #[inline]
    pub fn neighbours_of(&self, map_value: i32) -> &[u16] {
        let start = (-map_value - 1) as usize;
        let n = self.neighbours[start] as usize;
        &self.neighbours[start + 1..start + 1 + n]
    }
}

/// Which 8-dimensional 2-bit lattice (ggml's `iq2_data` slots).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Grid2 {
    /// IQ2_XXS: 256 points.
    Xxs,
    /// IQ2_XS: 512 points.
    Xs,
    /// IQ1_S and IQ1_M: 2048 points with 3 levels.
    Iq1,
    /// IQ2_S: 1024 points.
    S,
}

/// The IQ2/IQ1 lattices (8 coordinates of 2 bits; map size 43692).
pub(crate) fn lattice2(which: Grid2) -> &'static Lattice<8> {
    static CELLS: [OnceLock<Lattice<8>>; 4] = [
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
    ];
    const MAP_SIZE: usize = 43692;
    let (slot, packed, nwant): (usize, &[u16], usize) = match which {
        Grid2::Xxs => (0, &KGRID_2BIT_256, 2),
        Grid2::Xs => (1, &KGRID_2BIT_512, 2),
        Grid2::Iq1 => (2, &KGRID_1BIT_2048, 3),
        Grid2::S => (3, &KGRID_2BIT_1024, 1),
    };
    CELLS[slot].get_or_init(|| Lattice::build(packed, 2, MAP_SIZE, nwant))
}

/// The IQ3 lattices (4 coordinates of 3 bits; map size 4096): 256 points (IQ3_XXS) or 512 (IQ3_S).
pub(crate) fn lattice3(grid_size: usize) -> &'static Lattice<4> {
    static CELLS: [OnceLock<Lattice<4>>; 2] = [OnceLock::new(), OnceLock::new()];
    if grid_size == 256 {
        CELLS[0].get_or_init(|| Lattice::build(&KGRID_3BIT_256, 3, 4096, 2))
    } else {
        CELLS[1].get_or_init(|| Lattice::build(&KGRID_3BIT_512, 3, 4096, 3))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expanded grids ggml-common.h ships for dequantization hold the same points as the
    /// packed ones the init expands: one byte value per level, the same for every coordinate.
    fn same_points<const D: usize>(l: &Lattice<D>, expanded: impl Iterator<Item = u64>) {
        let mut byte_of_level = [None::<u8>; 8];
        for (g, e) in l.grid.iter().zip(expanded) {
            for (k, &c) in g.iter().enumerate() {
                let level = ((c - 1) / 2) as usize;
                let byte = (e >> (8 * k)) as u8;
                assert_eq!(*byte_of_level[level].get_or_insert(byte), byte);
            }
        }
        let seen: Vec<u8> = byte_of_level.iter().flatten().copied().collect();
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    }

    #[test]
    fn packed_and_expanded_grids_agree() {
        use crate::iq_grids::*;
        same_points(lattice2(Grid2::Xxs), IQ2XXS_GRID.iter().copied());
        same_points(lattice2(Grid2::Xs), IQ2XS_GRID.iter().copied());
        same_points(lattice2(Grid2::S), IQ2S_GRID.iter().copied());
        same_points(lattice3(256), IQ3XXS_GRID.iter().map(|&v| v as u64));
        same_points(lattice3(512), IQ3S_GRID.iter().map(|&v| v as u64));
        // IQ1 grid bytes are signed (-1, 0, 1): shift them to compare as levels
        let shifted = IQ1S_GRID.iter().map(|&v| v ^ 0x8080_8080_8080_8080);
        same_points(lattice2(Grid2::Iq1), shifted);
    }

    #[test]
    fn neighbour_lists_are_nearest_first() {
        let l = lattice3(512);
        let mut off = 0;
        for (i, &m) in l.map.iter().enumerate() {
            if m >= 0 {
                continue;
            }
            off += 1;
            let list = l.neighbours_of(m);
            assert!(!list.is_empty(), "entry {i}");
        }
        assert_eq!(off, 4096 - 512);
    }
}
